"""The `schedules` read model: one row per schedule, its status, spec, last and next fire, counts.

Most of a schedule's events say that one thing happened (a fire, a skip, an outcome), not how
many there have been, so the row's counts are sums: folding a batch reads the status and counts
of the rows its events touch that earlier batches wrote (ONE query), applies the events in log
order in memory and writes absolute values (``aggregate_rows.py``).

Deleted schedules keep their row (status ``deleted``); the list leaves them out unless asked.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import Cursor
from psycopg.rows import DictRow

from domain.schedule_spec import ScheduleSpec
from domain.schedule_status import ScheduleStatus
from infrastructure.migrations import Migration
from projections.aggregate_rows import AggregateRows
from projections.index_keys import INDEX_KEY_FUNCTIONS, key
from projections.query import Page, Sort, Where, check_choices, fetch_page
from projections.runner import LogEvent

TABLE = "duecall_rm_schedules"
PREFIX = "duecall:Schedule."
STATUSES = frozenset(s.value for s in ScheduleStatus)
# The sort key of "next_fire": a schedule without a next fire (finished, deleted) comes last.
NO_NEXT_FIRE = "9999-01-01 00:00:00+00"
SORTS = {
    "-created": Sort("-created", "created_at", descending=True),
    "next_fire": Sort("next_fire", "next_fire_order", descending=False),
}
# What the events add to (with the status, which an update reads): loaded for the rows a batch
# touches that earlier batches wrote.
COUNTS = ("runs", "fired", "triggered", "skipped", "missed", "buffered", "running",
          "succeeded", "failed", "cancelled")
_STATE = ("status", *COUNTS)

MIGRATIONS = [
    Migration(
        1,
        "create schedules read model",
        INDEX_KEY_FUNCTIONS + f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (
            id uuid PRIMARY KEY,
            tenant_id text NOT NULL,
            name text NOT NULL,
            status text NOT NULL,
            pause_reason text,
            finish_reason text,
            kind text NOT NULL,
            cron text,
            interval_seconds integer,
            timezone text NOT NULL,
            overlap text NOT NULL,
            on_missed text NOT NULL,
            max_runs integer,
            next_fire_at timestamptz,
            next_fire_order timestamptz GENERATED ALWAYS AS
                (coalesce(next_fire_at, '{NO_NEXT_FIRE}'::timestamptz)) STORED,
            last_fired_nominal timestamptz,
            last_fired_at timestamptz,
            last_call_id uuid,
            last_triggered_at timestamptz,
            runs integer NOT NULL DEFAULT 0,
            fired integer NOT NULL DEFAULT 0,
            triggered integer NOT NULL DEFAULT 0,
            skipped integer NOT NULL DEFAULT 0,
            missed integer NOT NULL DEFAULT 0,
            buffered integer NOT NULL DEFAULT 0,
            running integer NOT NULL DEFAULT 0,
            succeeded integer NOT NULL DEFAULT 0,
            failed integer NOT NULL DEFAULT 0,
            cancelled integer NOT NULL DEFAULT 0,
            consecutive_failures integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            version integer NOT NULL
        );
        CREATE INDEX IF NOT EXISTS {TABLE}_created ON {TABLE} (tenant_id, created_at DESC, id DESC);
        CREATE INDEX IF NOT EXISTS {TABLE}_status
            ON {TABLE} (tenant_id, status, created_at DESC, id DESC);
        CREATE INDEX IF NOT EXISTS {TABLE}_name_key
            ON {TABLE} (tenant_id, {key("name")}, created_at DESC);
        CREATE INDEX IF NOT EXISTS {TABLE}_next_fire ON {TABLE} (tenant_id, next_fire_order, id);
        """,
    ),
]

Row = dict[str, Any]


def _spec(values: Mapping[str, Any]) -> Row:
    """The spec's summary columns (its recorded payload, defaults filled in)."""
    spec = ScheduleSpec.restored(dict(values))
    return {
        "kind": "cron" if spec.cron is not None else "interval",
        "cron": spec.cron,
        "interval_seconds": spec.interval_seconds,
        "timezone": spec.timezone,
        "overlap": str(spec.overlap),
        "on_missed": str(spec.on_missed),
        "max_runs": spec.max_runs,
    }


def _created(e: Any) -> Row:
    return {
        "tenant_id": e.tenant_id,
        "name": e.name,
        "status": ScheduleStatus.ACTIVE.value,
        "pause_reason": None,
        "finish_reason": None,
        **_spec(e.spec),
        "next_fire_at": e.next_nominal,
        "last_fired_nominal": None,
        "last_fired_at": None,
        "last_call_id": None,
        "last_triggered_at": None,
        **dict.fromkeys(COUNTS, 0),
        "consecutive_failures": 0,
        "created_at": e.timestamp,
    }


def _fired(row: Row, e: Any) -> Row:
    return {
        "fired": row["fired"] + 1,
        "runs": row["runs"] + (0 if e.backfill else 1),
        "buffered": max(0, row["buffered"] - (1 if e.from_buffer else 0)),
        "running": max(0, row["running"] + 1 - len(e.cancelled_call_ids)),
        "last_fired_nominal": e.nominal,
        "last_fired_at": e.actual,
        "last_call_id": e.call_id,
        "next_fire_at": e.next_nominal,
    }


def _updated(row: Row, e: Any) -> Row:
    changes = {"name": e.name, **_spec(e.spec), "next_fire_at": e.next_nominal}
    if row["status"] == ScheduleStatus.FINISHED and e.next_nominal is not None:
        changes.update(status=ScheduleStatus.ACTIVE.value, finish_reason=None)
    return changes


def _ended(row: Row, counter: str, **changes: Any) -> Row:
    """A fire's call is terminal: one more ``counter``, one fewer running."""
    return {counter: row[counter] + 1, "running": max(0, row["running"] - 1), **changes}


_CHANGES: dict[str, Callable[[Row, Any], Row]] = {
    "Fired": _fired,
    "Skipped": lambda row, e: {"skipped": row["skipped"] + 1, "next_fire_at": e.next_nominal},
    "Buffered": lambda row, e: {"buffered": row["buffered"] + 1, "next_fire_at": e.next_nominal},
    "CaughtUp": lambda row, e: {"missed": row["missed"] + e.missed,
                                "next_fire_at": e.next_nominal},
    "Triggered": lambda row, e: {
        "triggered": row["triggered"] + 1, "running": row["running"] + 1,
        "last_call_id": e.call_id, "last_triggered_at": e.at,
    },
    "FireSucceeded": lambda row, e: _ended(row, "succeeded", consecutive_failures=0),
    "FireFailed": lambda row, e: _ended(
        row, "failed", consecutive_failures=e.consecutive_failures
    ),
    "FireCancelled": lambda row, e: _ended(row, "cancelled"),
    "Paused": lambda row, e: {"status": ScheduleStatus.PAUSED.value, "pause_reason": e.reason},
    "Resumed": lambda row, e: {
        "status": ScheduleStatus.ACTIVE.value, "pause_reason": None, "consecutive_failures": 0,
    },
    "Updated": _updated,
    "Finished": lambda row, e: {"status": ScheduleStatus.FINISHED.value,
                                "finish_reason": e.reason},
    "Deleted": lambda row, e: {"status": ScheduleStatus.DELETED.value, "next_fire_at": None},
}


_ROWS = AggregateRows(TABLE, PREFIX, _STATE, _created, _CHANGES)


class SchedulesProjection:
    name: str = "schedules"
    topics: frozenset[str] = _ROWS.topics
    tables: tuple[str, ...] = (TABLE,)
    migrations: Sequence[Migration] = MIGRATIONS

    def fold(self, curs: Cursor[DictRow], events: Sequence[LogEvent]) -> None:
        rows, _ = _ROWS.fold(curs, events)
        rows.flush(curs)


@dataclass(frozen=True)
class ScheduleFilters:
    status: list[str] | None = None  # none: every status but deleted
    name: str | None = None

    def where(self, tenant_id: str) -> Where:
        check_choices("status", self.status, STATUSES)
        where = Where().add("tenant_id = %s", tenant_id)
        if self.status:
            where.any_of("status", self.status)
        else:
            where.add("status <> %s", ScheduleStatus.DELETED.value)
        return where.keyed("name", self.name)


def list_schedules(
    curs: Cursor[DictRow],
    tenant_id: str,
    filters: ScheduleFilters,
    *,
    sort: str = "-created",
    limit: int = 50,
    cursor: str | None = None,
    include_total: bool = False,
) -> Page:
    """Schedules newest first (``-created``) or soonest next fire first (``next_fire``; those
    without one last); keyset pages."""
    where = filters.where(tenant_id)
    page = fetch_page(curs, TABLE, where, SORTS[sort], limit, cursor, include_total)
    items = [{k: v for k, v in item.items() if k != "next_fire_order"} for item in page.items]
    return Page(items, page.next_cursor, page.total)
