"""A concurrency slot freed by one worker wakes the timers of every worker, not only its own.

The first worker here is the test, driving the steps a worker takes (claim the start, start
the attempt, claim the execute, send, record the outcome) on a container of its own; the
second is a real worker loop on another container, with its own connections and listener, as
another process would have. The host limit is 1: B, due while A is in flight, can only start
once A's outcome is recorded (which a worker does within its 20 ms linger of the answer).
"""

import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from application.clock import utcnow
from application.commands import SubmitServiceCall
from application.outbox import EXECUTE, START
from domain.outcome import AttemptResult
from domain.request import RequestSpec
from infrastructure.container import Container
from infrastructure.settings import Settings
from tests.support.target_server import TargetServer

SLOW = 1.0
# the timer's fallback poll while held back by a limit is half its lookahead: 1 s here, so only
# a wake-up gets B there in time
LIMITED = {"host_max_in_flight": 1, "timer_lookahead_seconds": 2.0, "poll_interval_seconds": 2.0}
# the aim is 50 ms (20-30 ms measured on an idle machine); the suite runs three test processes
# on two cores, which adds tens of milliseconds: the bound still tells a wake-up from the poll
WOKEN_WITHIN = 0.25


@pytest.fixture
def two_workers(settings: Settings, clean_database: str) -> Iterator[tuple[Container, Container]]:
    limited = settings.model_copy(update=LIMITED)
    first = Container.build(limited)
    try:
        second = Container.build(limited)
        try:
            yield first, second
        finally:
            second.close()
    finally:
        first.close()


def _submit(container: Container, url: str, delay: float = 0.0) -> None:
    due = utcnow() + timedelta(seconds=delay)
    command = SubmitServiceCall("t-slots", "slot", RequestSpec("GET", url), due)
    container.service_calls.submit(command)


def test_a_slot_freed_by_one_worker_starts_the_call_another_worker_holds_back(
    two_workers: tuple[Container, Container],
) -> None:
    first, second = two_workers
    with TargetServer() as target:
        _submit(first, f"{target.url}/slow/{SLOW}")
        first.service_calls.start_due(first.outbox.claim(START, 1))
        attempts = first.service_calls.begin_attempts(first.outbox.claim(EXECUTE, 1))
        assert len(attempts) == 1

        second.start_workers()  # its first call (to another host) pays one-time costs
        _submit(second, f"http://localhost:{target.port}/warm-up")
        target.wait_for(1, path="/warm-up")

        _submit(first, f"{target.url}/b", delay=0.3)  # due while A is in flight
        began = time.monotonic()
        response = httpx.get(attempts[0].request.url, timeout=5)
        assert time.monotonic() - began >= SLOW * 0.9
        assert target.requests_for("/b") == []  # held back by the host limit meanwhile
        result = AttemptResult(duration_ms=SLOW * 1000, status_code=response.status_code)
        first.service_calls.finish_attempts([(attempts[0], result)])
        recorded = time.time()

        b = target.wait_for(1, path="/b", timeout=5)[0]
        assert b.received_at - recorded < WOKEN_WITHIN
