"""The statistics read model: per tenant, host, call name and minute/hour/day bucket.

Each finished execution adds to one row per granularity, keyed also by outcome and error kind:
a count, the retries among them (attempt > 1), the summed duration in whole microseconds
(integers, so a rebuild adds up to the very same values) and a latency histogram
(``projections.histogram``), summed element-wise on upsert. Queries read the table of the
requested bucket size, so 30 days by hour touch 720 buckets, whatever the execution count.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg import Cursor
from psycopg.rows import DictRow

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
KEY = ("tenant_id", "bucket", "host", "name", "outcome", "error_kind")


def table(granularity: str) -> str:
    return f"duecall_rm_stats_{granularity}"


_STATS_TABLE = """
CREATE TABLE IF NOT EXISTS {t} (
    tenant_id text NOT NULL, bucket timestamptz NOT NULL, host text NOT NULL,
    name text NOT NULL, outcome text NOT NULL, error_kind text NOT NULL,
    executions bigint NOT NULL, retries bigint NOT NULL, duration_us_sum bigint NOT NULL,
    latency_histogram bigint[] NOT NULL,
    PRIMARY KEY (tenant_id, bucket, host, name, outcome, error_kind)
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
        CREATE OR REPLACE AGGREGATE duecall_histogram_sum(bigint[])
            (SFUNC = duecall_array_add, STYPE = bigint[]);
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


def _upsert_sql(granularity: str) -> str:
    t = table(granularity)
    return f"""
    INSERT INTO {t} AS s ({", ".join(KEY)}, executions, retries, duration_us_sum,
                          latency_histogram)
    VALUES ({", ".join(["%s"] * (len(KEY) + 4))})
    ON CONFLICT ({", ".join(KEY)}) DO UPDATE SET
        executions = s.executions + EXCLUDED.executions,
        retries = s.retries + EXCLUDED.retries,
        duration_us_sum = s.duration_us_sum + EXCLUDED.duration_us_sum,
        latency_histogram = duecall_array_add(s.latency_histogram, EXCLUDED.latency_histogram)
    """


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
            curs.executemany(_upsert_sql(granularity), [(*k, *v) for k, v in sorted(rows.items())])
        curs.execute(f"DELETE FROM {PENDING} WHERE id = ANY(%s)", (ids,))


def _context(e: Any) -> dict[str, Any]:
    return {
        "tenant_id": e.tenant_id,
        "service_call_id": e.service_call_id,
        "host": host_of(getattr(e, "url", None)),
        "attempt": e.attempt,
    }


def _aggregate(
    finished: list[Recorded], contexts: dict[Any, DictRow], granularity: str
) -> dict[tuple[Any, ...], list[Any]]:
    rows: dict[tuple[Any, ...], list[Any]] = {}
    for recorded in finished:
        e = recorded.event
        context = contexts.get(e.originator_id)
        if context is None:
            continue  # a second outcome for one execution: counted once already
        when = getattr(e, "finished_at", None) or e.timestamp
        key = (context["tenant_id"], truncate(when, granularity), context["host"],
               context["name"], FINISHED[recorded.topic], getattr(e, "error_kind", None) or "")
        row = rows.setdefault(key, [0, 0, 0, [0] * BUCKETS])
        duration = float(getattr(e, "duration_ms", None) or 0.0)
        row[0] += 1
        row[1] += 1 if context["attempt"] > 1 else 0
        row[2] += round(duration * 1000)
        row[3][bucket_of(duration)] += 1
    return rows
