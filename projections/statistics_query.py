"""Questions answered from the statistics read model: counts, success rate, retries, latency."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import Cursor
from psycopg.rows import DictRow

from domain.errors import InvalidRequestError
from projections.histogram import BUCKETS, percentile
from projections.query import check_choices
from projections.statistics import GRANULARITIES, table, truncate

GROUPS = {"host": "host", "name": "name", "status": "outcome"}
MAX_BUCKETS = 2000
_STEP = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


@dataclass(frozen=True)
class StatsQuery:
    start: datetime
    end: datetime
    bucket: str = "hour"
    group_by: tuple[str, ...] = ()

    def check(self) -> None:
        check_choices("bucket", [self.bucket], frozenset(GRANULARITIES))
        check_choices("group_by", list(self.group_by), frozenset(GROUPS))
        if _utc(self.end) <= _utc(self.start):
            raise InvalidRequestError("to", "must be after from")
        if (_utc(self.end) - _utc(self.start)) / _STEP[self.bucket] > MAX_BUCKETS:
            raise InvalidRequestError(
                "bucket", f"more than {MAX_BUCKETS} buckets: use a larger bucket or a shorter range"
            )


@dataclass
class _Summary:
    executions: int = 0
    succeeded: int = 0
    retries: int = 0
    duration_us: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    histogram: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add(self, row: DictRow) -> None:
        self.executions += row["executions"]
        self.retries += row["retries"]
        self.duration_us += row["duration_us"]
        if row["outcome"] == "succeeded":
            self.succeeded += row["executions"]
        if kind := row["error_kind"]:
            self.errors[kind] = self.errors.get(kind, 0) + row["executions"]
        self.histogram = [a + b for a, b in zip(self.histogram, row["histogram"], strict=False)]

    def as_dict(self) -> dict[str, Any]:
        n = self.executions
        return {
            "executions": n,
            "succeeded": self.succeeded,
            "failed": n - self.succeeded,
            "success_rate": self.succeeded / n if n else None,
            "retries": self.retries,
            "errors": dict(sorted(self.errors.items())),
            "mean_ms": self.duration_us / n / 1000 if n else None,
            "p50_ms": percentile(self.histogram, 0.50),
            "p95_ms": percentile(self.histogram, 0.95),
            "p99_ms": percentile(self.histogram, 0.99),
        }


def statistics(curs: Cursor[DictRow], tenant_id: str, query: StatsQuery) -> list[dict[str, Any]]:
    """One entry per bucket (and group), oldest first."""
    query.check()
    columns = [GROUPS[g] for g in query.group_by]
    select = "".join(f"{c}, " for c in columns)
    curs.execute(
        f"SELECT bucket, {select}outcome, error_kind, sum(executions)::bigint AS executions, "
        "sum(retries)::bigint AS retries, sum(duration_us_sum)::bigint AS duration_us, "
        "duecall_histogram_sum(latency_histogram) AS histogram "
        f"FROM {table(query.bucket)} WHERE tenant_id = %s AND bucket >= %s AND bucket < %s "
        f"GROUP BY bucket, {select}outcome, error_kind ORDER BY bucket",
        (tenant_id, truncate(_utc(query.start), query.bucket), _utc(query.end)),
    )
    summaries: dict[tuple[Any, ...], _Summary] = {}
    for row in curs.fetchall():
        key = (row["bucket"], *(row[c] for c in columns))
        summaries.setdefault(key, _Summary()).add(row)
    return [
        {"bucket": key[0], "group": dict(zip(query.group_by, key[1:], strict=True)),
         **summary.as_dict()}
        for key, summary in sorted(summaries.items(), key=lambda item: item[0])
    ]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
