"""The `executions` read model: one row per attempt, newest first; and the latest per name."""

from collections.abc import Collection, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow

from infrastructure.migrations import Migration
from projections.folding import RowChanges, host_of, names_of, write_json
from projections.index_keys import INDEX_KEY_FUNCTIONS, key, key_equals
from projections.query import MAX_LIMIT, Page, Sort, Where, check_choices, fetch_page
from projections.runner import LogEvent

TABLE = "duecall_rm_executions"
NAMES = "duecall_rm_execution_call_names"  # this projection's own call id → name
SUBMITTED = "duecall:ServiceCall.Submitted"
PREFIX = "duecall:Execution."
OUTCOMES = frozenset({"running", "succeeded", "failed"})
NEWEST_FIRST = Sort("-started", "started_at", descending=True)

MIGRATIONS = [
    Migration(
        1,
        "create executions read model",
        f"""
        CREATE TABLE IF NOT EXISTS {NAMES} (id uuid PRIMARY KEY, name text NOT NULL);
        CREATE TABLE IF NOT EXISTS {TABLE} (
            id uuid PRIMARY KEY,
            tenant_id text NOT NULL,
            service_call_id uuid NOT NULL,
            name text NOT NULL DEFAULT '',
            attempt integer NOT NULL,
            method text NOT NULL DEFAULT '',
            host text NOT NULL DEFAULT '',
            started_at timestamptz NOT NULL,
            finished_at timestamptz,
            duration_ms double precision,
            status_code integer,
            error_kind text,
            outcome text NOT NULL DEFAULT 'running'
        );
        CREATE INDEX IF NOT EXISTS {TABLE}_started ON {TABLE} (tenant_id, started_at DESC, id DESC);
        CREATE INDEX IF NOT EXISTS {TABLE}_name
            ON {TABLE} (tenant_id, name, started_at DESC, id DESC);
        CREATE INDEX IF NOT EXISTS {TABLE}_call ON {TABLE} (service_call_id);
        """,
    ),
    Migration(
        2,
        "executions: index a bounded key of the call name",
        INDEX_KEY_FUNCTIONS + f"""
        DROP INDEX IF EXISTS {TABLE}_name;
        CREATE INDEX IF NOT EXISTS {TABLE}_name_key
            ON {TABLE} (tenant_id, {key("name")}, started_at DESC, id DESC);
        """,
    ),
]

def _started(e: Any) -> dict[str, Any]:
    return {
        "tenant_id": e.tenant_id,
        "service_call_id": e.service_call_id,
        "attempt": e.attempt,
        "method": e.method,
        "host": host_of(e.url),
        "started_at": e.started_at,
    }


def _finished(e: Any, outcome: str) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "finished_at": e.finished_at,
        "duration_ms": e.duration_ms,
        "status_code": e.status_code,
        "error_kind": getattr(e, "error_kind", None),  # Failed has one, Succeeded not
    }


class ExecutionsProjection:
    name: str = "executions"
    topics: frozenset[str] = frozenset(
        {SUBMITTED, PREFIX + "Started", PREFIX + "Succeeded", PREFIX + "Failed"}
    )
    tables: tuple[str, ...] = (TABLE, NAMES)
    migrations: Sequence[Migration] = MIGRATIONS

    def fold(self, curs: Cursor[DictRow], events: Sequence[LogEvent]) -> None:
        names, rows = RowChanges(NAMES), RowChanges(TABLE)
        for recorded in events:
            e, kind = recorded.event, recorded.topic.removeprefix(PREFIX)
            if recorded.topic == SUBMITTED:
                names.insert(e.originator_id, {"name": e.name})
            elif kind == "Started":
                rows.insert(e.originator_id, _started(e))
            else:
                rows.update(e.originator_id, _finished(e, kind.lower()))
        _fill_names(curs, rows.inserts.values(), names.inserts)
        write_json(curs, [*names.writes(), *rows.writes()])


def _fill_names(
    curs: Cursor[DictRow],
    started: Collection[dict[str, Any]],
    submitted: dict[Hashable, dict[str, Any]],
) -> None:
    """Each new execution's call name: from a Submitted in this batch, else from the table
    (as written, once: no update of the new rows after their insert)."""
    known = {call: row["name"] for call, row in submitted.items()}
    earlier = {row["service_call_id"] for row in started} - known.keys()
    known.update(names_of(curs, NAMES, earlier))
    for row in started:
        row["name"] = known.get(row["service_call_id"], "")


@dataclass(frozen=True)
class ExecutionFilters:
    outcome: list[str] | None = None
    name: str | None = None
    host: str | None = None
    service_call_id: UUID | None = None
    error_kind: str | None = None
    started_from: datetime | None = None
    started_to: datetime | None = None

    def where(self, tenant_id: str) -> Where:
        check_choices("outcome", self.outcome, OUTCOMES)
        where = Where().add("tenant_id = %s", tenant_id).any_of("outcome", self.outcome)
        where.keyed("name", self.name).equals("host", self.host)
        where.equals("service_call_id", self.service_call_id).equals("error_kind", self.error_kind)
        return where.between("started", "started_at", self.started_from, self.started_to)


def list_executions(
    curs: Cursor[DictRow],
    tenant_id: str,
    filters: ExecutionFilters,
    *,
    limit: int = 50,
    cursor: str | None = None,
    include_total: bool = False,
) -> Page:
    where = filters.where(tenant_id)
    return fetch_page(curs, TABLE, where, NEWEST_FIRST, limit, cursor, include_total)


def get_execution(
    curs: Cursor[DictRow], tenant_id: str, execution_id: UUID
) -> dict[str, Any] | None:
    where = "tenant_id = %s AND id = %s"
    curs.execute(f"SELECT * FROM {TABLE} WHERE {where}", (tenant_id, execution_id))
    row = curs.fetchone()
    return dict(row) if row else None


# A loose index scan: hop from name to name on the (tenant, name key, started) index, then take
# each name's newest row, so the cost grows with the number of names, not of executions.
_LATEST = f"""
WITH RECURSIVE names AS (
    (SELECT {key("name")} AS k FROM {TABLE} WHERE tenant_id = %(t)s ORDER BY 1 LIMIT 1)
    UNION ALL
    SELECT (SELECT {key("name")} FROM {TABLE} WHERE tenant_id = %(t)s AND {key("name")} > names.k
            ORDER BY 1 LIMIT 1)
    FROM names WHERE names.k IS NOT NULL
)
SELECT e.* FROM names CROSS JOIN LATERAL (
    SELECT * FROM {TABLE} WHERE tenant_id = %(t)s AND {key("name")} = names.k
    ORDER BY started_at DESC, id DESC LIMIT 1
) AS e
ORDER BY e.started_at DESC, e.id DESC LIMIT {MAX_LIMIT}
"""


def latest_executions(
    curs: Cursor[DictRow], tenant_id: str, name: str | None = None
) -> list[dict[str, Any]]:
    """The newest execution of each call name (or of the one ``name``)."""
    if name is None:
        curs.execute(_LATEST, {"t": tenant_id})
    else:
        curs.execute(
            f"SELECT * FROM {TABLE} WHERE tenant_id = %s AND {key_equals('name')} "
            "ORDER BY started_at DESC, id DESC LIMIT 1",
            (tenant_id, name, name),
        )
    return [dict(row) for row in curs.fetchall()]


# Each call's newest attempts (a manual retry can add more than a retry policy's 50), oldest
# first, by the index on service_call_id; tenant-scoped as every query here.
_OF_CALLS = f"""
SELECT * FROM (
    SELECT *, row_number() OVER (PARTITION BY service_call_id ORDER BY attempt DESC) AS nth
    FROM {TABLE} WHERE service_call_id = ANY(%s) AND tenant_id = %s
) AS newest WHERE nth <= %s ORDER BY service_call_id, attempt
"""


def executions_of_calls(
    curs: Cursor[DictRow], tenant_id: str, call_ids: Sequence[UUID], per_call: int
) -> dict[UUID, list[dict[str, Any]]]:
    """The attempts of each of these calls that is the tenant's (a workflow run's steps'),
    at most ``per_call`` of each (its newest), first attempt first, in one query."""
    if not call_ids:
        return {}
    curs.execute(_OF_CALLS, (list(call_ids), tenant_id, per_call))
    found: dict[UUID, list[dict[str, Any]]] = {}
    for row in curs.fetchall():
        found.setdefault(row["service_call_id"], []).append(dict(row))
    return found
