"""The `service_calls` read model: one row per call, its current status and last outcome."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow

from domain.status import Status
from infrastructure.migrations import Migration
from projections.folding import RowChanges, host_of
from projections.index_keys import INDEX_KEY_FUNCTIONS, has_tag, key
from projections.query import Page, Sort, Where, check_choices, fetch_page
from projections.runner import LogEvent

TABLE = "duecall_rm_service_calls"
PREFIX = "duecall:ServiceCall."
SORTS = {
    "-created": Sort("-created", "created_at", descending=True),
    "due": Sort("due", "due_at", descending=False),
}
STATUSES = frozenset(s.value for s in Status)

MIGRATIONS = [
    Migration(
        1,
        "create service calls read model",
        f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (
            id uuid PRIMARY KEY,
            tenant_id text NOT NULL,
            name text NOT NULL,
            status text NOT NULL,
            attempt integer NOT NULL DEFAULT 0,
            due_at timestamptz NOT NULL,
            host text NOT NULL DEFAULT '',
            method text NOT NULL DEFAULT '',
            last_status_code integer,
            last_error_kind text,
            failure_reason text,
            tags text[] NOT NULL DEFAULT '{{}}',
            correlation_id text,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            finished_at timestamptz,
            total_duration_ms double precision GENERATED ALWAYS AS
                (extract(epoch FROM finished_at - created_at) * 1000) STORED,
            version integer NOT NULL
        );
        CREATE INDEX IF NOT EXISTS {TABLE}_created ON {TABLE} (tenant_id, created_at DESC, id DESC);
        CREATE INDEX IF NOT EXISTS {TABLE}_status
            ON {TABLE} (tenant_id, status, created_at DESC, id DESC);
        CREATE INDEX IF NOT EXISTS {TABLE}_due ON {TABLE} (tenant_id, due_at, id);
        CREATE INDEX IF NOT EXISTS {TABLE}_name ON {TABLE} (tenant_id, name, created_at DESC);
        CREATE INDEX IF NOT EXISTS {TABLE}_tags ON {TABLE} USING gin (tags);
        CREATE INDEX IF NOT EXISTS {TABLE}_correlation
            ON {TABLE} (tenant_id, correlation_id) WHERE correlation_id IS NOT NULL;
        """,
    ),
    Migration(
        2,
        "service calls: index bounded keys of name, tags and correlation id",
        INDEX_KEY_FUNCTIONS + f"""
        DROP INDEX IF EXISTS {TABLE}_name, {TABLE}_tags, {TABLE}_correlation;
        CREATE INDEX IF NOT EXISTS {TABLE}_name_key
            ON {TABLE} (tenant_id, {key("name")}, created_at DESC);
        CREATE INDEX IF NOT EXISTS {TABLE}_tag_keys ON {TABLE} USING gin (duecall_index_keys(tags));
        CREATE INDEX IF NOT EXISTS {TABLE}_correlation_key
            ON {TABLE} (tenant_id, {key("correlation_id")}) WHERE correlation_id IS NOT NULL;
        """,
    ),
]


def _change(
    fixed: Mapping[str, Any], *names: str, **renamed: str
) -> Callable[[Any], dict[str, Any]]:
    """A change's columns: ``fixed`` values, then the event's fields, ``names`` as they are and
    ``renamed`` as column=field (the pairs worked out once, not for every event)."""
    pairs = [*((name, name) for name in names), *renamed.items()]

    def columns(event: Any) -> dict[str, Any]:
        row = dict(fixed)
        for column, field in pairs:
            row[column] = getattr(event, field)
        return row

    return columns


def _submitted(e: Any) -> dict[str, Any]:
    return {
        "tenant_id": e.tenant_id,
        "name": e.name,
        "status": Status.SCHEDULED.value,
        "attempt": 1,
        "due_at": e.due_at,
        "host": host_of(e.url),
        "method": e.method,
        "tags": list(e.tags),
        "correlation_id": e.correlation_id,
        "created_at": e.timestamp,
    }


_CHANGES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "Scheduled": _change({"status": "scheduled"}, "attempt", "due_at"),
    "Started": _change({"status": "running"}, "attempt"),
    "AttemptFailed": _change({}, last_status_code="status_code", last_error_kind="error_kind"),
    "Succeeded": _change(
        {"status": "succeeded", "last_error_kind": None},
        "finished_at", last_status_code="status_code",
    ),
    "Failed": _change(
        {"status": "failed"}, "finished_at", last_status_code="status_code",
        last_error_kind="error_kind", failure_reason="reason",
    ),
    "Cancelled": _change({"status": "cancelled"}, finished_at="cancelled_at"),
    "Paused": _change({"status": "paused"}),
    "Resumed": _change({"status": "scheduled"}),
    "RetryRequested": _change(
        {"status": "scheduled", "finished_at": None, "failure_reason": None}, "attempt", "due_at"
    ),
}


class ServiceCallsProjection:
    name: str = "service_calls"
    topics: frozenset[str] = frozenset({PREFIX + "Submitted", *(PREFIX + n for n in _CHANGES)})
    tables: tuple[str, ...] = (TABLE,)
    migrations: Sequence[Migration] = MIGRATIONS

    def fold(self, curs: Cursor[DictRow], events: Sequence[LogEvent]) -> None:
        rows = RowChanges(TABLE)
        for recorded in events:
            e, kind = recorded.event, recorded.topic.removeprefix(PREFIX)
            stamp = {"updated_at": e.timestamp, "version": e.originator_version}
            if kind == "Submitted":
                rows.insert(e.originator_id, {**_submitted(e), **stamp})
            else:
                rows.update(e.originator_id, {**_CHANGES[kind](e), **stamp})
        rows.flush(curs)


@dataclass(frozen=True)
class ServiceCallFilters:
    status: list[str] | None = None
    name: str | None = None
    tag: str | None = None
    host: str | None = None
    correlation_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    finished_from: datetime | None = None
    finished_to: datetime | None = None

    def where(self, tenant_id: str) -> Where:
        check_choices("status", self.status, STATUSES)
        where = Where().add("tenant_id = %s", tenant_id).any_of("status", self.status)
        where.keyed("name", self.name).equals("host", self.host)
        where.keyed("correlation_id", self.correlation_id)
        if self.tag is not None:
            where.add(has_tag(), self.tag, self.tag)
        where.between("created", "created_at", self.created_from, self.created_to)
        return where.between("finished", "finished_at", self.finished_from, self.finished_to)


def list_service_calls(
    curs: Cursor[DictRow],
    tenant_id: str,
    filters: ServiceCallFilters,
    *,
    sort: str = "-created",
    limit: int = 50,
    cursor: str | None = None,
    include_total: bool = False,
) -> Page:
    where = filters.where(tenant_id)
    return fetch_page(curs, TABLE, where, SORTS[sort], limit, cursor, include_total)


def attempts_of(curs: Cursor[DictRow], tenant_id: str, ids: Sequence[UUID]) -> dict[UUID, int]:
    """The current attempt of each of these calls that is the tenant's (a workflow run's
    steps' calls, for the dashboard), in one query by primary key."""
    if not ids:
        return {}
    curs.execute(
        f"SELECT id, attempt FROM {TABLE} WHERE id = ANY(%s) AND tenant_id = %s",
        (list(ids), tenant_id),
    )
    return {row["id"]: int(row["attempt"]) for row in curs.fetchall()}
