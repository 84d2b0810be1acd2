"""Outcomes are gathered for ``outcome_linger_seconds`` before they are recorded, unless the
timer waits for the concurrency slots they hold: then they are recorded at once (the short
linger), so a limit is not turned into a rate of ``limit / outcome_linger``."""

import time
from collections.abc import Iterator

import pytest

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.request import RequestSpec
from harness.target_server import TargetServer
from infrastructure.container import Container
from infrastructure.settings import Settings
from tests.support.waiting import wait_until

LINGER = 1.0


@pytest.fixture
def lingering(settings: Settings, clean_database: str) -> Iterator[Container]:
    container = Container.build(settings.model_copy(update={
        "outcome_linger_seconds": LINGER, "host_max_in_flight": 1, "poll_interval_seconds": 0.2,
    }))
    try:
        yield container
    finally:
        container.close()


def _submit(container: Container, url: str) -> str:
    call, _ = container.service_calls.submit(
        SubmitServiceCall("t-linger", "linger", RequestSpec("GET", url), utcnow())
    )
    return str(call.id)


def test_a_lone_outcome_is_recorded_after_the_linger(lingering: Container) -> None:
    with TargetServer() as target:
        call_id = _submit(lingering, f"{target.url}/ok")
        lingering.start_workers()
        arrived = target.wait_for(1)[0].received_at
        wait_until(
            lambda: lingering.service_calls.get_call("t-linger", call_id).status == "succeeded",
            timeout=10, interval=0.02,
        )
        assert time.time() - arrived >= LINGER * 0.8


def test_outcomes_a_held_back_timer_waits_for_are_recorded_at_once(
    lingering: Container,
) -> None:
    with TargetServer() as target:
        for _ in range(5):  # one host, one slot: each call waits for the one before
            _submit(lingering, f"{target.url}/ok")
        lingering.start_workers()
        requests = target.wait_for(5, timeout=10)
        first, last = min(r.received_at for r in requests), max(r.received_at for r in requests)
        # four hand-overs of the slot; at LINGER each they would take 4 s
        assert last - first < LINGER


def test_a_workflow_steps_outcome_is_recorded_without_the_linger(lingering: Container) -> None:
    """The run's next step waits for the step's recorded outcome: a chain of three steps does
    not take two lingers."""
    with TargetServer() as target:
        lingering.start_workers()
        steps = [{"id": "a", "request": {"method": "GET", "url": f"{target.url}/ok"}}]
        for before, step in (("a", "b"), ("b", "c")):
            steps.append({"id": step, "needs": [before],
                          "request": {"method": "GET", "url": f"{target.url}/ok"}})
        lingering.workflows.submit("t-linger", {"name": "chain", "steps": steps}, None)
        requests = target.wait_for(3, timeout=10)
        assert requests[-1].received_at - requests[0].received_at < LINGER
