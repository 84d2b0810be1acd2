"""Questions answered from the statistics read model: counts, success rate, retries, latency.

One statement reads the rows of one roll-up level (the groups asked for) and does the
arithmetic: with ``status`` in ``group_by`` each row splits into its two outcomes, and each
percentile's latency bucket is a binary search of the row's cumulative histogram
(``width_bucket``, see ``projections.histogram``). Python only shapes the entries.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row

from domain.errors import InvalidRequestError
from projections.histogram import REPRESENTATIVE_MS
from projections.query import check_choices
from projections.statistics_schema import (
    BY_HOST,
    BY_NAME,
    ERROR_KINDS,
    GRANULARITIES,
    table,
    truncate,
)

MAX_BUCKETS = 2000
PERCENTILES = (0.50, 0.95, 0.99)  # answered as p50_ms, p95_ms, p99_ms
_STEP = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_GROUPS = ("host", "name", "status")
GROUPS = frozenset(_GROUPS)

# (status, executions, succeeded, retries, us, latency, errors?) of each entry a row gives.
_ALL_OUTCOMES = """(VALUES (NULL, succeeded + failed, succeeded,
    succeeded_retries + failed_retries, succeeded_us + failed_us, latency, true))"""
_BY_OUTCOME = """(VALUES
    ('succeeded', succeeded, succeeded, succeeded_retries, succeeded_us, succeeded_latency, false),
    ('failed', failed, 0, failed_retries, failed_us, failed_latency, true))"""
# Columns: 0-2 the groups, 3-10 the entry's own values, then the error counts, then the
# percentiles' latency buckets (``_entry`` reads them by position: tuples are cheap).
_ERRORS = slice(11, 11 + len(ERROR_KINDS))
_SELECT = f"""
SELECT s.host, s.name, e.status,
    s.bucket, e.executions, e.succeeded, e.executions - e.succeeded,
    e.succeeded::float8 / e.executions, e.retries, e.us::float8 / e.executions / 1000,
    e.with_errors, {", ".join(f"errors_{kind}" for kind in ERROR_KINDS)},
    {", ".join(f"width_bucket(greatest(ceil({f!r} * e.executions), 1)::bigint - 1, e.latency)"
               for f in PERCENTILES)}
FROM {{table}} AS s CROSS JOIN LATERAL {{outcomes}}
    AS e(status, executions, succeeded, retries, us, latency, with_errors)
WHERE s.tenant_id = %s AND s.level = %s AND s.bucket >= %s AND s.bucket < %s
    AND e.executions > 0
ORDER BY s.bucket, s.host, s.name, e.status DESC
"""


@dataclass(frozen=True)
class StatsQuery:
    start: datetime
    end: datetime
    bucket: str = "hour"
    group_by: tuple[str, ...] = ()

    def check(self) -> None:
        check_choices("bucket", [self.bucket], frozenset(GRANULARITIES))
        check_choices("group_by", list(self.group_by), GROUPS)
        if _utc(self.end) <= _utc(self.start):
            raise InvalidRequestError("to", "must be after from")
        if (_utc(self.end) - _utc(self.start)) / _STEP[self.bucket] > MAX_BUCKETS:
            raise InvalidRequestError(
                "bucket", f"more than {MAX_BUCKETS} buckets: use a larger bucket or a shorter range"
            )

    @property
    def level(self) -> int:
        return (BY_HOST if "host" in self.group_by else 0) | (
            BY_NAME if "name" in self.group_by else 0
        )


def statistics(curs: Cursor[DictRow], tenant_id: str, query: StatsQuery) -> list[dict[str, Any]]:
    """One entry per bucket and group, oldest first: one stored row each (two by status)."""
    query.check()
    outcomes = _BY_OUTCOME if "status" in query.group_by else _ALL_OUTCOMES
    groups = [i for i, g in enumerate(_GROUPS) if g in query.group_by]
    # Thousands of rows: tuples in binary format cost about half of dicts in text.
    with curs.connection.cursor(row_factory=tuple_row, binary=True) as rows:
        rows.execute(
            _SELECT.format(table=table(query.bucket), outcomes=outcomes),
            (tenant_id, query.level, truncate(_utc(query.start), query.bucket), _utc(query.end)),
        )
        return [_entry(row, groups) for row in rows.fetchall()]


def _entry(row: tuple[Any, ...], groups: list[int]) -> dict[str, Any]:
    ms, errors = REPRESENTATIVE_MS, zip(ERROR_KINDS, row[_ERRORS], strict=True)
    return {
        "bucket": row[3],
        "group": {_GROUPS[i]: row[i] for i in groups},
        "executions": row[4],
        "succeeded": row[5],
        "failed": row[6],
        "success_rate": row[7],
        "retries": row[8],
        "mean_ms": row[9],
        "errors": {kind: n for kind, n in errors if n} if row[10] else {},
        "p50_ms": ms[row[-3]],
        "p95_ms": ms[row[-2]],
        "p99_ms": ms[row[-1]],
    }


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
