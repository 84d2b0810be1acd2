"""The statistics read model: per tenant, host, call name and minute/hour/day bucket.

Each finished execution adds, per outcome (succeeded/failed), to a count, the retries among
them (attempt > 1) and the summed duration in whole microseconds (integers, so a rebuild adds
up to the very same values); failures also count by error kind; and its latency goes into
three cumulative histograms (all, succeeded, failed; ``projections.histogram``). Rows exist at
four roll-up levels (``projections.statistics_schema``), so a query reads one row per bucket
and group, whatever the number of executions.

A batch is first aggregated in memory, one row per key; then each table gets an upsert of all
its rows (sent as a JSON array), the three in ONE statement with the batch's other writes
(``folding.write_json``). An execution's context (tenant, host, attempt, the call's name) comes
from its Started and the call's Submitted event; it is kept in a table only while
those and the outcome are in different batches.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from operator import add
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow

from infrastructure.migrations import Migration
from projections.folding import Write, host_of, names_of, write_json
from projections.histogram import BUCKETS, bucket_of, cumulative
from projections.runner import LogEvent
from projections.statistics_schema import (
    ALL,
    BY_HOST,
    BY_NAME,
    COUNTS,
    ERROR_KINDS,
    GRANULARITIES,
    HISTOGRAMS,
    KEY,
    MIGRATIONS,
    NAMES,
    PENDING,
    UNIQUE_KEY,
    buckets,
    table,
)

SUBMITTED = "duecall:ServiceCall.Submitted"
STARTED = "duecall:Execution.Started"
FINISHED = {"duecall:Execution.Succeeded": 0, "duecall:Execution.Failed": 1}  # outcome index
_ERROR_COLUMN = {kind: COUNTS.index(f"errors_{kind}") for kind in ERROR_KINDS}
_COLUMNS = (*KEY, *COUNTS, *HISTOGRAMS)
_UPSERT = "ON CONFLICT ({}) DO UPDATE SET {}".format(
    ", ".join(UNIQUE_KEY),
    ", ".join([*(f"{c} = s.{c} + EXCLUDED.{c}" for c in COUNTS),
               *(f"{h} = duecall_cumulative_add(s.{h}, EXCLUDED.{h})" for h in HISTOGRAMS)]),
)


@dataclass(frozen=True, slots=True)
class _Context:
    tenant_id: str
    service_call_id: UUID
    host: str
    attempt: int

    def row(self, execution_id: UUID) -> dict[str, Any]:
        """Its row of the pending table (``dataclasses.asdict`` deep-copies every field: 3.5 %
        of the read-model process's samples in a burst)."""
        return {"id": execution_id, "tenant_id": self.tenant_id,
                "service_call_id": self.service_call_id, "host": self.host,
                "attempt": self.attempt}


class _Row:
    """One row's totals for the batch: COUNTS, and per outcome its counts per latency bucket
    and the highest bucket it has any in."""

    __slots__ = ("counts", "histograms", "top")

    def __init__(self) -> None:
        self.counts = [0] * len(COUNTS)
        self.histograms = ([0] * BUCKETS, [0] * BUCKETS)
        self.top = [-1, -1]

    def add(self, outcome: int, retry: int, micros: int, bucket: int, error: int | None) -> None:
        base = 3 * outcome  # COUNTS: succeeded, its retries, its µs; failed, ...
        self.counts[base] += 1
        self.counts[base + 1] += retry
        self.counts[base + 2] += micros
        self.histograms[outcome][bucket] += 1
        self.top[outcome] = max(self.top[outcome], bucket)
        if error is not None:
            self.counts[error] += 1

    def values(self) -> list[Any]:
        """COUNTS, then HISTOGRAMS as stored (cumulative, cut after the last non-empty bucket)."""
        (succeeded, failed), (s, f) = self.histograms, self.top
        both = max(s, f) + 1
        latency = cumulative(list(map(add, succeeded[:both], failed[:both])))
        return [*self.counts, latency, cumulative(succeeded[: s + 1]), cumulative(failed[: f + 1])]


class StatisticsProjection:
    name: str = "statistics"
    topics: frozenset[str] = frozenset({SUBMITTED, STARTED, *FINISHED})
    tables: tuple[str, ...] = (NAMES, PENDING, *(table(g) for g in GRANULARITIES))
    migrations: Sequence[Migration] = MIGRATIONS

    def fold(self, curs: Cursor[DictRow], events: Sequence[LogEvent]) -> None:
        names: dict[UUID, str] = {}
        started: dict[UUID, _Context] = {}
        finished: list[tuple[int, Any]] = []
        for recorded in events:
            e = recorded.event
            if recorded.topic == SUBMITTED:
                names[e.originator_id] = e.name
            elif recorded.topic == STARTED:
                host = host_of(e.url)
                started[e.originator_id] = _Context(e.tenant_id, e.service_call_id, host, e.attempt)
            else:
                finished.append((FINISHED[recorded.topic], e))
        counted = _with_context(curs, finished, started)
        writes = [Write(NAMES, [{"id": i, "name": n} for i, n in names.items()]),
                  Write(PENDING, [c.row(i) for i, c in started.items()])]
        if counted:
            earlier = {c.service_call_id for c, _, _ in counted} - set(names)
            all_names = {**names, **names_of(curs, NAMES, earlier)}
            writes += [Write(table(granularity), rows, None, _UPSERT) for granularity, rows
                       in zip(GRANULARITIES, _aggregate(counted, all_names), strict=True)]
        write_json(curs, writes)


def _with_context(
    curs: Cursor[DictRow], finished: list[tuple[int, Any]], started: dict[UUID, _Context]
) -> list[tuple[_Context, int, Any]]:
    """Each outcome with its execution's context, taken from this batch or from the table."""
    earlier_ids = [e.originator_id for _, e in finished if e.originator_id not in started]
    earlier: dict[UUID, _Context] = {}
    if earlier_ids:
        curs.execute(f"DELETE FROM {PENDING} WHERE id = ANY(%s) RETURNING *", (earlier_ids,))
        earlier = {row.pop("id"): _Context(**row) for row in curs.fetchall()}
    counted = []
    for outcome, e in finished:
        context = started.pop(e.originator_id, None) or earlier.pop(e.originator_id, None)
        if context is not None:  # else a second outcome for one execution: counted already
            counted.append((context, outcome, e))
    return counted


def _aggregate(
    counted: list[tuple[_Context, int, Any]], names: dict[UUID, str]
) -> list[list[dict[str, Any]]]:
    """One row per key and table: each execution adds to 3 buckets by 4 roll-up levels."""
    tables: list[dict[tuple[Any, ...], _Row]] = [{} for _ in GRANULARITIES]
    for context, outcome, e in counted:
        duration = float(e.duration_ms)
        kind = getattr(e, "error_kind", None)  # Failed has one, Succeeded not
        sample = (outcome, int(context.attempt > 1), round(duration * 1000), bucket_of(duration),
                  _ERROR_COLUMN.get(kind, _ERROR_COLUMN["other"]) if kind else None)
        host, name = context.host, names.get(context.service_call_id, "")
        levels = ((BY_HOST | BY_NAME, host, name), (BY_HOST, host, ALL), (BY_NAME, ALL, name),
                  (0, ALL, ALL))
        for rows, bucket in zip(tables, buckets(e.finished_at),
                                strict=True):
            for level, h, n in levels:
                key = (context.tenant_id, level, bucket, h, n)
                row = rows.get(key)
                if row is None:
                    row = rows[key] = _Row()
                row.add(*sample)
    return [[dict(zip(_COLUMNS, (*k, *r.values()), strict=True)) for k, r in rows.items()]
            for rows in tables]
