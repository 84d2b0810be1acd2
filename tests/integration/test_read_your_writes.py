"""Read-your-writes: a write tells its log position; a read given it waits (bounded) for it."""

import threading
import time
from datetime import timedelta

import psycopg

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.request import RequestSpec
from infrastructure.container import Container
from projections.freshness import MAX_WAIT_SECONDS
from tests.support.read_models import catch_up
from tests.support.workload import submit_calls


def _head(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT max(notification_id) FROM duecall_events").fetchone()
    assert row is not None
    return int(row[0])


def _count_of(container: Container, min_position: int) -> tuple[int, bool, float]:
    """(calls in the read model, stale?, seconds taken) of a read given ``min_position``."""
    started = time.monotonic()
    with container.read_models.reading("service_calls", min_position) as (curs, freshness):
        curs.execute("SELECT count(*) AS n FROM duecall_rm_service_calls")
        row = curs.fetchone()
    assert row is not None
    return int(row["n"]), freshness.stale, time.monotonic() - started


def test_a_submit_tells_the_position_of_the_last_event_it_recorded(
    rm_container: Container, database_url: str
) -> None:
    submit_calls(rm_container, 2)
    command = _command(idempotency_key="k-1")
    submitted = rm_container.service_calls.submit_many([command, _command()])
    assert submitted.position == _head(database_url)
    assert [created for _, created in submitted] == [True, True]

    submit_calls(rm_container, 1)
    again = rm_container.service_calls.submit_many([command])  # recorded nothing new
    assert again[0][0].id == submitted[0][0].id
    assert again.position == _head(database_url)  # at or after the original's events


def test_a_read_waits_until_the_read_model_has_folded_the_write(
    rm_container: Container,
) -> None:
    submitted = rm_container.service_calls.submit_many([_command()] * 3)
    assert submitted.position is not None
    runner = threading.Timer(0.3, catch_up, args=(rm_container,))
    runner.start()
    count, stale, took = _count_of(rm_container, submitted.position)
    runner.join()
    assert (count, stale) == (3, False)
    assert 0.3 <= took < MAX_WAIT_SECONDS


def test_a_read_waits_at_most_the_bound_and_then_says_it_is_stale(
    rm_container: Container, database_url: str
) -> None:
    submit_calls(rm_container, 2)
    count, stale, took = _count_of(rm_container, _head(database_url))
    assert (count, stale) == (0, True)
    assert MAX_WAIT_SECONDS <= took < MAX_WAIT_SECONDS + 1


def test_a_position_not_in_the_log_is_not_waited_for(
    rm_container: Container, database_url: str
) -> None:
    submit_calls(rm_container, 1)
    catch_up(rm_container)
    count, stale, took = _count_of(rm_container, _head(database_url) + 1000)
    assert (count, stale) == (1, True)
    assert took < 0.5


def _command(idempotency_key: str | None = None) -> SubmitServiceCall:
    """A call due in an hour (nothing runs it in these tests)."""
    return SubmitServiceCall(
        tenant_id="t1", name="ryw", request=RequestSpec("POST", "http://a.example/ok"),
        due_at=utcnow() + timedelta(hours=1), idempotency_key=idempotency_key,
    )
