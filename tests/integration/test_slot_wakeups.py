"""A concurrency slot freed by one worker wakes the timers of every worker, not only its own.

The first worker here is the test, driving the steps a worker takes (claim the start, start
the attempt, claim the execute, send, record the outcome) on a container of its own; the
second is a real worker loop on another container, with its own connections and listener, as
another process would have. The host limit is 1: B, due while A is in flight, can only start
once A's outcome is recorded. Three rounds, each with a fresh second worker and tenant.
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
from harness.target_server import TargetServer
from infrastructure.container import Container
from infrastructure.settings import Settings

SLOW = 1.0
# the timer's fallback poll while held back by a limit is half its lookahead: 5 s here, so only
# a wake-up gets B there in time
LIMITED = {"host_max_in_flight": 1, "timer_lookahead_seconds": 10.0, "poll_interval_seconds": 10.0}
WOKEN_WITHIN = 0.05  # the bound; 12-28 ms measured on a quiet machine
ROUNDS = 3  # every round woken, not polled; the best within WOKEN_WITHIN (the suite shares CPUs)


@pytest.fixture
def first(settings: Settings, clean_database: str) -> Iterator[Container]:
    container = Container.build(settings.model_copy(update=LIMITED))
    try:
        yield container
    finally:
        container.close()


def _submit(container: Container, tenant: str, url: str, delay: float = 0.0) -> None:
    due = utcnow() + timedelta(seconds=delay)
    command = SubmitServiceCall(tenant, "slot", RequestSpec("GET", url), due)
    container.service_calls.submit(command)


def _round(first: Container, target: TargetServer, tenant: str) -> float:
    """Seconds from A's outcome recorded (by the first worker) to B reaching the target (sent
    by the second worker, whose timer held B back while A was in flight)."""
    _submit(first, tenant, f"{target.url}/slow/{SLOW}")
    first.service_calls.start_due(first.outbox.claim(START, 1))
    attempts = first.service_calls.begin_attempts(first.outbox.claim(EXECUTE, 1))
    assert len(attempts) == 1

    second = Container.build(first.settings)
    try:
        second.start_workers()  # its first call (to another host) pays one-time costs
        _submit(second, tenant, f"http://localhost:{target.port}/warm-up/{tenant}")
        target.wait_for(1, path=f"/warm-up/{tenant}")

        _submit(first, tenant, f"{target.url}/b/{tenant}", delay=0.3)  # due while A is in flight
        began = time.monotonic()
        response = httpx.get(attempts[0].request.url, timeout=5)
        assert time.monotonic() - began >= SLOW * 0.9
        assert target.requests_for(f"/b/{tenant}") == []  # held back by the host limit
        result = AttemptResult(duration_ms=SLOW * 1000, status_code=response.status_code)
        first.service_calls.finish_attempts([(attempts[0], result)])
        recorded = time.time()

        b = target.wait_for(1, path=f"/b/{tenant}", timeout=10)[0]
        return b.received_at - recorded
    finally:
        second.close()


def test_a_slot_freed_by_one_worker_starts_the_call_another_worker_holds_back(
    first: Container,
) -> None:
    with TargetServer() as target:
        woken = [_round(first, target, f"t-slots-{n}") for n in range(ROUNDS)]
    assert max(woken) < 2.0, woken  # never left to the poll (5 s away)
    assert min(woken) < WOKEN_WITHIN, woken
