"""The statistics read model: per tenant, host, call name and minute/hour/day bucket.

Each finished execution adds, per outcome (succeeded/failed), to a count, the retries among
them (attempt > 1), the summed duration in whole microseconds (integers, so a rebuild adds up
to the very same values) and a latency histogram (``projections.histogram``, summed
element-wise on upsert); failures also count by error kind. Rows are kept for every
(host, name) and rolled up to (host, '*'), ('*', name) and ('*', '*'), in one table per
bucket size: a query reads exactly one row per bucket and group (30 days by hour: 720 rows per
group), whatever the number of executions.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from infrastructure.migrations import Migration
from projections.folding import RowChanges, host_of
from projections.histogram import BUCKETS, bucket_of
from projections.runner import Recorded

GRANULARITIES = ("minute", "hour", "day")
NAMES = "duecall_rm_stats_call_names"
PENDING = "duecall_rm_stats_running"  # started executions: what their outcome is counted under
SUBMITTED = "duecall:ServiceCall.Submitted"
STARTED = "duecall:Execution.Started"
FINISHED = {"duecall:Execution.Succeeded": "succeeded", "duecall:Execution.Failed": "failed"}
KEY = ("tenant_id", "bucket", "host", "name")
ALL = "*"
OUTCOMES = ("succeeded", "failed")


def table(granularity: str) -> str:
    return f"duecall_rm_stats_{granularity}"


_STATS_TABLE = """
CREATE TABLE IF NOT EXISTS {t} (
    tenant_id text NOT NULL, bucket timestamptz NOT NULL, host text NOT NULL,
    name text NOT NULL,
    succeeded bigint NOT NULL, failed bigint NOT NULL,
    succeeded_retries bigint NOT NULL, failed_retries bigint NOT NULL,
    succeeded_us bigint NOT NULL, failed_us bigint NOT NULL,
    succeeded_histogram bigint[] NOT NULL, failed_histogram bigint[] NOT NULL,
    errors jsonb NOT NULL,
    PRIMARY KEY (tenant_id, bucket, host, name)
);
"""

MIGRATIONS = [
    Migration(
        1,
        "create statistics read model",
        f"""
        CREATE OR REPLACE FUNCTION duecall_array_add(a bigint[], b bigint[]) RETURNS bigint[]
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a ELSE ARRAY(
                SELECT coalesce(x, 0) + coalesce(y, 0)
                FROM unnest(a, b) WITH ORDINALITY AS u(x, y, i) ORDER BY i) END
        $$;
        CREATE OR REPLACE FUNCTION duecall_counts_add(a jsonb, b jsonb) RETURNS jsonb
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT coalesce(jsonb_object_agg(k, coalesce((a->>k)::bigint, 0)
                                               + coalesce((b->>k)::bigint, 0)), '{{}}')
            FROM (SELECT jsonb_object_keys(a) UNION SELECT jsonb_object_keys(b)) AS keys(k)
        $$;
        CREATE TABLE IF NOT EXISTS {NAMES} (id uuid PRIMARY KEY, name text NOT NULL);
        CREATE TABLE IF NOT EXISTS {PENDING} (
            id uuid PRIMARY KEY, tenant_id text NOT NULL, service_call_id uuid NOT NULL,
            host text NOT NULL, attempt integer NOT NULL
        );
        """ + "".join(_STATS_TABLE.format(t=table(g)) for g in GRANULARITIES),
    )
]

_CONTEXT = f"""
SELECT p.id, p.tenant_id, p.host, p.attempt, coalesce(n.name, '') AS name
FROM {PENDING} AS p LEFT JOIN {NAMES} AS n ON n.id = p.service_call_id
WHERE p.id = ANY(%s)
"""


_SUMS = [f"{o}{c}" for o in OUTCOMES for c in ("", "_retries", "_us")]
_ARRAYS = [f"{o}_histogram" for o in OUTCOMES]


def _upsert_sql(granularity: str) -> str:
    columns = [*KEY, *_SUMS, *_ARRAYS, "errors"]
    updates = [f"{c} = s.{c} + EXCLUDED.{c}" for c in _SUMS]
    updates += [f"{c} = duecall_array_add(s.{c}, EXCLUDED.{c})" for c in _ARRAYS]
    updates.append("errors = duecall_counts_add(s.errors, EXCLUDED.errors)")
    return (
        f"INSERT INTO {table(granularity)} AS s ({', '.join(columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET {', '.join(updates)}"
    )


def truncate(moment: datetime, granularity: str) -> datetime:
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    if granularity in ("hour", "day"):
        moment = moment.replace(minute=0)
    return moment.replace(hour=0) if granularity == "day" else moment


class StatisticsProjection:
    name: str = "statistics"
    topics: frozenset[str] = frozenset({SUBMITTED, STARTED, *FINISHED})
    tables: tuple[str, ...] = (NAMES, PENDING, *(table(g) for g in GRANULARITIES))
    migrations: Sequence[Migration] = MIGRATIONS

    def fold(self, curs: Cursor[DictRow], events: Sequence[Recorded]) -> None:
        names, pending = RowChanges(NAMES), RowChanges(PENDING)
        finished: list[Recorded] = []
        for recorded in events:
            e = recorded.event
            if recorded.topic == SUBMITTED:
                names.insert(e.originator_id, {"name": e.name})
            elif recorded.topic == STARTED:
                pending.insert(e.originator_id, _context(e))
            else:
                finished.append(recorded)
        names.flush(curs)
        pending.flush(curs)
        if finished:
            self._count(curs, finished)

    def _count(self, curs: Cursor[DictRow], finished: list[Recorded]) -> None:
        ids = [r.event.originator_id for r in finished]
        curs.execute(_CONTEXT, (ids,))
        contexts = {row["id"]: row for row in curs.fetchall()}
        for granularity in GRANULARITIES:
            rows = _aggregate(finished, contexts, granularity)
            curs.executemany(
                _upsert_sql(granularity), [(*k, *v.values()) for k, v in sorted(rows.items())]
            )
        curs.execute(f"DELETE FROM {PENDING} WHERE id = ANY(%s)", (ids,))


def _context(e: Any) -> dict[str, Any]:
    return {
        "tenant_id": e.tenant_id,
        "service_call_id": e.service_call_id,
        "host": host_of(getattr(e, "url", None)),
        "attempt": e.attempt,
    }


def _empty_row() -> dict[str, Any]:
    return {**dict.fromkeys(_SUMS, 0), **{c: [0] * BUCKETS for c in _ARRAYS}, "errors": {}}


def _aggregate(
    finished: list[Recorded], contexts: dict[Any, DictRow], granularity: str
) -> dict[tuple[Any, ...], dict[str, Any]]:
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for recorded in finished:
        e = recorded.event
        context = contexts.get(e.originator_id)
        if context is None:
            continue  # a second outcome for one execution: counted once already
        bucket = truncate(getattr(e, "finished_at", None) or e.timestamp, granularity)
        tenant, host, name = context["tenant_id"], context["host"], context["name"]
        for key in {(h, n) for h in (host, ALL) for n in (name, ALL)}:
            row = rows.setdefault((tenant, bucket, *key), _empty_row())
            _add(row, FINISHED[recorded.topic], e, context["attempt"])
    for row in rows.values():
        row["errors"] = Jsonb(row["errors"])
    return rows


def _add(row: dict[str, Any], outcome: str, e: Any, attempt: int) -> None:
    duration = float(getattr(e, "duration_ms", None) or 0.0)
    row[outcome] += 1
    row[f"{outcome}_retries"] += 1 if attempt > 1 else 0
    row[f"{outcome}_us"] += round(duration * 1000)
    row[f"{outcome}_histogram"][bucket_of(duration)] += 1
    if kind := getattr(e, "error_kind", None):
        row["errors"][kind] = row["errors"].get(kind, 0) + 1
