"""Questions answered from the statistics read model: counts, success rate, retries, latency."""

import operator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.types.json import set_json_loads

from domain.errors import InvalidRequestError
from projections.histogram import percentiles
from projections.query import check_choices
from projections.statistics import ALL, GRANULARITIES, OUTCOMES, table, truncate

GROUPS = frozenset({"host", "name", "status"})
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
        check_choices("group_by", list(self.group_by), GROUPS)
        if _utc(self.end) <= _utc(self.start):
            raise InvalidRequestError("to", "must be after from")
        if (_utc(self.end) - _utc(self.start)) / _STEP[self.bucket] > MAX_BUCKETS:
            raise InvalidRequestError(
                "bucket", f"more than {MAX_BUCKETS} buckets: use a larger bucket or a shorter range"
            )


def statistics(curs: Cursor[DictRow], tenant_id: str, query: StatsQuery) -> list[dict[str, Any]]:
    """One entry per bucket and group, oldest first: one stored row each (see statistics)."""
    query.check()
    set_json_loads(orjson.loads, curs)  # the error counts: thousands of small documents
    host = "host <> %s" if "host" in query.group_by else "host = %s"
    name = "name <> %s" if "name" in query.group_by else "name = %s"
    curs.execute(
        f"SELECT * FROM {table(query.bucket)} WHERE tenant_id = %s AND bucket >= %s "
        f"AND bucket < %s AND {host} AND {name} ORDER BY bucket, host, name",
        (tenant_id, truncate(_utc(query.start), query.bucket), _utc(query.end), ALL, ALL),
    )
    entries = []
    for row in curs.fetchall():
        group: dict[str, str] = {g: row[g] for g in ("host", "name") if g in query.group_by}
        if "status" in query.group_by:
            entries += [_entry(row, {**group, "status": o}, (o,)) for o in OUTCOMES]
        else:
            entries.append(_entry(row, group, OUTCOMES))
    return [e for e in entries if e["executions"]]


def _entry(row: DictRow, group: dict[str, str], outcomes: tuple[str, ...]) -> dict[str, Any]:
    n = sum(row[o] for o in outcomes)
    succeeded = row["succeeded"] if "succeeded" in outcomes else 0
    histograms = [row[f"{o}_histogram"] for o in outcomes]
    histogram = list(map(operator.add, *histograms)) if len(histograms) == 2 else histograms[0]
    errors = row["errors"] if "failed" in outcomes else {}
    p50, p95, p99 = percentiles(histogram, 0.50, 0.95, 0.99)
    return {
        "bucket": row["bucket"],
        "group": group,
        "executions": n,
        "succeeded": succeeded,
        "failed": n - succeeded,
        "success_rate": succeeded / n if n else None,
        "retries": sum(row[f"{o}_retries"] for o in outcomes),
        "errors": dict(sorted(errors.items())),
        "mean_ms": sum(row[f"{o}_us"] for o in outcomes) / n / 1000 if n else None,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
    }


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
