"""The status_intervals read model: each call's statuses as contiguous intervals, and the
"which calls were in status S at T" query answered through its indexes (EXPLAIN shows it)."""

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from infrastructure.container import Container
from projections.status_intervals import AS_OF, TABLE
from tests.support.audit_scenario import run_audit_scenario
from tests.support.read_models import catch_up, reset_read_models


@pytest.fixture
def fresh(container: Container) -> Iterator[Container]:
    reset_read_models(container)
    yield container
    reset_read_models(container)


def test_a_calls_statuses_are_contiguous_intervals(fresh: Container, database_url: str) -> None:
    call_id = run_audit_scenario(fresh).call_id
    catch_up(fresh)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT status, valid_from, nullif(valid_to, 'infinity') FROM {TABLE} "
            "WHERE service_call_id = %s "
            "ORDER BY version", (call_id,)
        ).fetchall()
    assert [r[0] for r in rows] == [
        "scheduled", "running", "scheduled", "running", "failed",
        "scheduled", "running", "succeeded",
    ]
    assert all(a[2] == b[1] for a, b in itertools.pairwise(rows))
    assert rows[-1][2] is None  # open: valid_to is 'infinity'


def _seed(conn: psycopg.Connection[Any], calls: int, now: datetime) -> None:
    """``calls`` synthetic calls over 30 days, for 20 tenants: scheduled, running, done."""
    conn.execute(
        f"""
        INSERT INTO {TABLE} (service_call_id, version, tenant_id, status, valid_from, valid_to)
        SELECT md5(c::text)::uuid, v.version, 't' || (c %% 20), v.status,
               %(now)s - make_interval(secs => (c * 2592000.0 / %(calls)s)) + v.start,
               coalesce(%(now)s - make_interval(secs => (c * 2592000.0 / %(calls)s)) + v.stop,
                        'infinity')
        FROM generate_series(1, %(calls)s) AS c,
             (VALUES (2, 'scheduled', interval '0', interval '10 minutes'),
                     (3, 'running', interval '10 minutes', interval '10 minutes 2 seconds'),
                     (4, 'succeeded', interval '10 minutes 2 seconds', NULL))
             AS v(version, status, start, stop)
        """,
        {"now": now, "calls": calls},
    )
    conn.execute(f"ANALYZE {TABLE}")


def _plan(conn: psycopg.Connection[Any], tenant: str, status: str, at: datetime) -> str:
    rows = conn.execute(f"EXPLAIN {AS_OF}", (tenant, [status], at, at)).fetchall()
    return "\n".join(str(r[0]) for r in rows)


@pytest.fixture(scope="module")
def seeded(module_rm_container: Container, database_url: str) -> datetime:
    """60,000 synthetic calls' intervals up to the moment returned, for the module's
    queries."""
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        _seed(conn, 60_000, now)
    return now


@pytest.mark.parametrize("days_ago", [0.01, 29.5])
def test_the_as_of_query_uses_an_interval_index(
    seeded: datetime, database_url: str, days_ago: float
) -> None:
    now = seeded
    with psycopg.connect(database_url, autocommit=True) as conn:
        at = now - timedelta(days=days_ago)
        plan = _plan(conn, "t7", "scheduled", at)
        found = conn.execute(AS_OF, ("t7", ["scheduled"], at, at)).fetchall()
    assert f"{TABLE}_ended" in plan or f"{TABLE}_began" in plan, plan
    assert "Seq Scan" not in plan, plan
    assert 0 < len(found) < 20  # a ten-minute window of one tenant's calls
