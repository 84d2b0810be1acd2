"""The `status_intervals` read model: each call's statuses over time, as [valid_from, valid_to).

Every event that sets a call's status closes the call's open interval at the event's time and
opens the next (``valid_to`` is 'infinity' while open); one interval per event, so a rebuild
gives the same rows whatever the batch boundaries. "Which calls were scheduled at T" is then
``valid_from <= T < valid_to``, answered through one of two btree indexes, (tenant, status,
valid_to) for recent moments (few intervals end after T) and (tenant, status, valid_from) for
old ones (few begin before T); the planner picks the one with the smaller range.
"""

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from psycopg import Cursor
from psycopg.rows import DictRow

from infrastructure.migrations import Migration
from projections.folding import Write, write_json
from projections.query import Page, check_choices, fetch_page
from projections.runner import LogEvent
from projections.service_calls import SORTS, STATUSES, ServiceCallFilters
from projections.service_calls import TABLE as CALLS_TABLE

log = structlog.get_logger(__name__)

TABLE = "duecall_rm_status_intervals"
PREFIX = "duecall:ServiceCall."
# Submitted schedules the first attempt; Resumed and RetryRequested are followed by a Scheduled
# in the same save
STATUS_OF = {
    "Submitted": "scheduled",
    "Scheduled": "scheduled",
    "Started": "running",
    "Succeeded": "succeeded",
    "Failed": "failed",
    "Cancelled": "cancelled",
    "Paused": "paused",
}

MIGRATIONS = [
    Migration(
        1,
        "create status intervals read model",
        f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (
            service_call_id uuid NOT NULL,
            version integer NOT NULL,
            tenant_id text NOT NULL,
            status text NOT NULL,
            valid_from timestamptz NOT NULL,
            valid_to timestamptz NOT NULL DEFAULT 'infinity',
            PRIMARY KEY (service_call_id, version)
        );
        CREATE INDEX IF NOT EXISTS {TABLE}_ended
            ON {TABLE} (tenant_id, status, valid_to, valid_from) INCLUDE (service_call_id);
        CREATE INDEX IF NOT EXISTS {TABLE}_began
            ON {TABLE} (tenant_id, status, valid_from, valid_to) INCLUDE (service_call_id);
        """,
    )
]

OPEN = "infinity"  # valid_to of a call's latest interval (sent as JSON, read by timestamptz)
_TENANTS = (
    f"SELECT DISTINCT ON (service_call_id) service_call_id, tenant_id FROM {TABLE} "
    "WHERE service_call_id = ANY(%s)"
)
AS_OF = (
    f"SELECT service_call_id FROM {TABLE} WHERE tenant_id = %s AND status = ANY(%s) "
    "AND valid_from <= %s AND valid_to > %s"
)
_STATUS_AT = (
    f"SELECT service_call_id, status FROM {TABLE} WHERE service_call_id = ANY(%s) "
    "AND valid_from <= %s AND valid_to > %s"
)


class StatusIntervalsProjection:
    name: str = "status_intervals"
    topics: frozenset[str] = frozenset(PREFIX + kind for kind in STATUS_OF)
    tables: tuple[str, ...] = (TABLE,)
    migrations: Sequence[Migration] = MIGRATIONS

    def fold(self, curs: Cursor[DictRow], events: Sequence[LogEvent]) -> None:
        rows: list[dict[str, Any]] = []  # the intervals this batch opens, in order
        latest: dict[UUID, dict[str, Any]] = {}  # each call's last one of them
        closes: dict[UUID, datetime] = {}  # intervals opened by earlier batches, now ended
        for recorded in events:
            e, kind = recorded.event, recorded.topic.removeprefix(PREFIX)
            previous = latest.get(e.originator_id)
            if previous is not None:
                previous["valid_to"] = e.timestamp
            elif kind != "Submitted":
                closes[e.originator_id] = e.timestamp
            row = {
                "service_call_id": e.originator_id,
                "version": e.originator_version,
                "tenant_id": getattr(e, "tenant_id", None) or (previous or {}).get("tenant_id"),
                "status": STATUS_OF[kind],
                "valid_from": e.timestamp,
                "valid_to": OPEN,
            }
            rows.append(row)
            latest[e.originator_id] = row
        _fill_tenants(curs, rows)
        ended = [{"service_call_id": call, "valid_to": at} for call, at in closes.items()]
        write_json(curs, [
            Write(TABLE, ended, "service_call_id", "AND t.valid_to = 'infinity'"),
            Write(TABLE, [row for row in rows if row["tenant_id"] is not None]),
        ])


def _fill_tenants(curs: Cursor[DictRow], rows: list[dict[str, Any]]) -> None:
    """Only a call's first event names its tenant: later ones take it from its intervals."""
    unknown = list({row["service_call_id"] for row in rows if row["tenant_id"] is None})
    if not unknown:
        return
    curs.execute(_TENANTS, (unknown,))
    tenants = {r["service_call_id"]: r["tenant_id"] for r in curs.fetchall()}
    for row in rows:
        row["tenant_id"] = row["tenant_id"] or tenants.get(row["service_call_id"])
        if row["tenant_id"] is None:
            log.warning("interval_without_tenant", service_call_id=str(row["service_call_id"]))


def list_calls_as_of(
    curs: Cursor[DictRow],
    tenant_id: str,
    filters: ServiceCallFilters,
    as_of: datetime,
    *,
    sort: str = "-created",
    limit: int = 50,
    cursor: str | None = None,
    include_total: bool = False,
) -> Page:
    """The calls that were in one of ``filters.status`` (any, if none) at ``as_of``, with
    ``status`` as it was then (the other fields as they are now)."""
    statuses = filters.status or sorted(STATUSES)
    check_choices("status", statuses, STATUSES)
    where = replace(filters, status=None).where(tenant_id)
    where.add(f"id IN ({AS_OF})", tenant_id, statuses, as_of, as_of)
    page = fetch_page(curs, CALLS_TABLE, where, SORTS[sort], limit, cursor, include_total)
    curs.execute(_STATUS_AT, ([item["id"] for item in page.items], as_of, as_of))
    then = {row["service_call_id"]: row["status"] for row in curs.fetchall()}
    items = [{**item, "status": then.get(item["id"], item["status"])} for item in page.items]
    return Page(items, page.next_cursor, page.total)
