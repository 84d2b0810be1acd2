"""The timer never makes an attempt before its due time (and does not dawdle after it).

It records the start up to ``DUECALL_TIMER_PRESTART_SECONDS`` ahead (as started at the due
time), and its worker sends the request at the due time.
"""

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.request import RequestSpec
from domain.service_call import ServiceCall, Status
from harness.target_server import TargetServer
from infrastructure.container import Container
from tests.support.waiting import wait_terminal

TENANT = "t-due"


def _submit(container: Container, url: str, due_at: datetime) -> ServiceCall:
    call, _ = container.service_calls.submit(
        SubmitServiceCall(TENANT, "due", RequestSpec("GET", url), due_at)
    )
    return call


def _started_events(container: Container, call_id: UUID) -> list[Any]:
    return [
        e
        for e in container.service_calls.events.get(call_id)
        if type(e).__qualname__.endswith("Started")
    ]


def test_a_call_due_in_one_second_is_never_started_before_its_due_time(
    container: Container,
) -> None:
    with TargetServer() as target:
        due_at = utcnow() + timedelta(seconds=1)
        call = _submit(container, f"{target.url}/ok", due_at)
        container.start_workers()

        (request,) = target.wait_for(1, path="/ok", timeout=10)
        final = wait_terminal(container, TENANT, call.id, timeout=10)

    assert final.status == Status.SUCCEEDED
    (started,) = _started_events(container, call.id)
    assert started.started_at == due_at  # recorded ahead, as of its due time
    prestart = timedelta(seconds=container.settings.timer_prestart_seconds)
    assert due_at - prestart - timedelta(seconds=0.05) <= started.timestamp
    assert request.received_at >= due_at.timestamp()
    assert request.received_at - due_at.timestamp() < 3.0  # on time, give or take a poll


def test_calls_due_a_moment_apart_each_start_at_or_after_their_own_due_time(
    container: Container,
) -> None:
    with TargetServer() as target:
        now = utcnow()
        due_at = {f"/due/{i}": now + timedelta(seconds=0.3 + i * 0.1) for i in range(8)}
        calls = {path: _submit(container, target.url + path, at) for path, at in due_at.items()}
        container.start_workers()

        for call in calls.values():
            wait_terminal(container, TENANT, call.id, timeout=10)
        received = {path: target.requests_for(path) for path in calls}

    for path, call in calls.items():
        (request,) = received[path]
        (started,) = _started_events(container, call.id)
        assert started.started_at >= due_at[path], path
        assert request.received_at >= due_at[path].timestamp(), path
