"""Concurrency limits: excess due attempts wait in the outbox and start when a slot frees."""

from collections.abc import Iterator

import pytest

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.request import RequestSpec
from harness.target_server import ReceivedRequest, TargetServer
from infrastructure.container import Container
from infrastructure.settings import Settings
from tests.support.waiting import wait_until

SLOW = 0.4


def _most_at_once(requests: list[ReceivedRequest]) -> int:
    """Most requests the target was serving at one moment (each lasts SLOW seconds)."""
    starts = sorted(r.received_at for r in requests)
    return max(sum(1 for t in starts if s <= t < s + SLOW * 0.9) for s in starts)


@pytest.fixture
def limited(settings: Settings, clean_database: str) -> Iterator[Container]:
    limits = {"host_max_in_flight": 2, "tenant_max_in_flight": 3, "poll_interval_seconds": 0.2}
    container = Container.build(settings.model_copy(update=limits))
    try:
        yield container
    finally:
        container.close()


def _submit(container: Container, tenant: str, url: str) -> None:
    container.service_calls.submit(SubmitServiceCall(tenant, "limited", RequestSpec("GET", url),
                                                     utcnow()))


def test_at_most_the_host_limit_is_in_flight_and_the_rest_still_run(limited: Container) -> None:
    with TargetServer() as target:
        for _ in range(6):
            _submit(limited, "t-host", f"{target.url}/slow/{SLOW}")
        limited.start_workers()
        requests = target.wait_for(6, timeout=10)
        assert _most_at_once(requests) == 2


def test_at_most_the_tenant_limit_is_in_flight_across_hosts(limited: Container) -> None:
    with TargetServer() as first, TargetServer() as second:
        for _ in range(3):
            _submit(limited, "t-tenant", f"{first.url}/slow/{SLOW}")
            _submit(limited, "t-tenant", f"http://localhost:{second.url.rsplit(':', 1)[1]}"
                                         f"/slow/{SLOW}")
        limited.start_workers()
        wait_until(lambda: len(first.requests) + len(second.requests) == 6, timeout=10)
        assert _most_at_once(first.requests + second.requests) == 3


def test_another_tenant_is_not_held_back_by_a_busy_one(limited: Container) -> None:
    with TargetServer() as target:
        for _ in range(4):
            _submit(limited, "t-busy", f"{target.url}/slow/2")
        _submit(limited, "t-other", f"{target.url}/ok")
        limited.start_workers()
        (ok,) = target.wait_for(1, path="/ok", timeout=10)
        busy = target.wait_for(2, path="/slow/2", timeout=10)
        # The other tenant's call went out while both of the busy tenant's slots were taken
        # (before either of its 2-second calls could finish and free one).
        assert ok.received_at < min(r.received_at for r in busy) + 2.0
