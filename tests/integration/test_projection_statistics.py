"""Statistics agree with a brute-force computation over the executions read model."""

import math
from datetime import timedelta

import psycopg
import pytest

from application.clock import utcnow
from infrastructure.container import Container
from projections.histogram import bucket_of
from projections.statistics_query import StatsQuery, statistics
from tests.support.read_models import catch_up
from tests.support.workload import run_until_idle, submit_calls

BRUTE_FORCE = """
SELECT host, name, outcome, count(*) AS n, count(*) FILTER (WHERE attempt > 1) AS retries,
       array_agg(duration_ms ORDER BY duration_ms) AS durations
FROM duecall_rm_executions WHERE tenant_id = 't1' GROUP BY host, name, outcome
"""


def _nearest_rank(values: list[float], fraction: float) -> float:
    return values[max(1, math.ceil(fraction * len(values))) - 1]


@pytest.mark.parametrize("bucket", ["minute", "day"])
def test_statistics_match_a_brute_force_count_of_executions(
    rm_container: Container, database_url: str, bucket: str
) -> None:
    submit_calls(rm_container, 60, behaviours=("ok", "ok", "flaky", "timeout", "missing"))
    run_until_idle(rm_container, seed=7)
    catch_up(rm_container)
    now = utcnow()
    query = StatsQuery(now - timedelta(hours=1), now + timedelta(hours=1), bucket,
                       ("host", "name", "status"))
    with rm_container.read_models.reading("statistics") as (curs, _):
        answered = statistics(curs, "t1", query)
    totals: dict[tuple[str, str, str], list[int]] = {}
    for entry in answered:  # several minute buckets may hold one group: add them up
        key = (entry["group"]["host"], entry["group"]["name"], entry["group"]["status"])
        total = totals.setdefault(key, [0, 0])
        total[0] += entry["executions"]
        total[1] += entry["retries"]
    with psycopg.connect(database_url) as conn:
        expected = conn.execute(BRUTE_FORCE).fetchall()

    assert totals == {(h, n, o): [count, retries] for h, n, o, count, retries, _ in expected}
    if bucket == "day":
        by_group = {(e["group"]["host"], e["group"]["name"], e["group"]["status"]): e
                    for e in answered}
        for host, name, outcome, _, _, durations in expected:
            for fraction, field in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
                exact = _nearest_rank(durations, fraction)
                estimate = by_group[(host, name, outcome)][field]
                assert abs(bucket_of(estimate) - bucket_of(exact)) <= 1, (field, exact, estimate)


def test_an_inverted_time_range_is_rejected_naming_the_field() -> None:
    from domain.errors import InvalidRequestError

    now = utcnow()
    with pytest.raises(InvalidRequestError) as raised:
        StatsQuery(now, now - timedelta(hours=1)).check()
    assert raised.value.field == "to"
