"""Lifecycle commands on the ServiceCall aggregate: cancel, pause, resume, manual retry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from domain.errors import InvalidTransitionError
from domain.ids import execution_id_for, new_service_call_id
from domain.outcome import AttemptOutcome
from domain.request import RequestSpec
from domain.retry_policy import RetryPolicy
from domain.service_call import TERMINAL, ServiceCall, Status
from tests.support.domain_events import collect, names, rebuild

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
DUE = NOW + timedelta(minutes=5)
REQUEST = RequestSpec("POST", "https://api.example.com/hooks/1", {}, "{}", 10.0)



def _status(call: ServiceCall) -> Status:
    """``call.status``, read afresh: mypy keeps an asserted ``call.status`` narrowed across
    the method calls that change it."""
    return call.status


def _outcome(call: ServiceCall, status_code: int) -> AttemptOutcome:
    return AttemptOutcome(
        execution_id=str(execution_id_for(call.id, call.attempt)),
        attempt=call.attempt,
        succeeded=200 <= status_code < 300,
        duration_ms=5.0,
        status_code=status_code,
        error_kind=None if 200 <= status_code < 300 else "http_error",
        message=f"HTTP {status_code}",
    )


def _scheduled() -> ServiceCall:
    return ServiceCall.submit(
        id=new_service_call_id(), tenant_id="tenant-a", name="n", request=REQUEST, due_at=DUE
    )


def _paused() -> ServiceCall:
    call = _scheduled()
    assert call.pause(NOW) is True
    return call


def _running() -> ServiceCall:
    call = _scheduled()
    assert call.start(1, DUE) is not None
    return call


def _succeeded() -> ServiceCall:
    call = _running()
    assert call.record_outcome(_outcome(call, 200), DUE)
    return call


def _failed() -> ServiceCall:
    call = _running()
    assert call.record_outcome(_outcome(call, 404), DUE)
    assert call.status is Status.FAILED
    return call


def _cancelled() -> ServiceCall:
    call = _scheduled()
    call.cancel("no longer needed", NOW)
    return call


STATES: dict[Status, Callable[[], ServiceCall]] = {
    Status.SCHEDULED: _scheduled,
    Status.PAUSED: _paused,
    Status.RUNNING: _running,
    Status.SUCCEEDED: _succeeded,
    Status.FAILED: _failed,
    Status.CANCELLED: _cancelled,
}


def _in(status: Status) -> ServiceCall:
    call = STATES[status]()
    assert call.status is status
    collect(call)
    return call


def _rebuilds(call: ServiceCall, events: list[ServiceCall.Event]) -> None:
    assert rebuild(ServiceCall, events).describe() == call.describe()


# --- cancel ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status", [Status.SCHEDULED, Status.PAUSED, Status.RUNNING]
)
def test_cancel_ends_a_live_call_as_cancelled(status: Status) -> None:
    call = _in(status)
    at = NOW + timedelta(seconds=3)
    call.cancel("customer asked", at)
    events = collect(call)
    assert names(events) == ["Cancelled"]
    cancelled = cast(Any, events[0])
    assert cancelled.reason == "customer asked"
    assert cancelled.cancelled_at == at
    assert call.status is Status.CANCELLED
    assert call.is_terminal
    assert call.finished_at == at
    assert call.describe()["status"] == "cancelled"


def test_cancel_without_a_reason_records_none() -> None:
    call = _in(Status.SCHEDULED)
    call.cancel(None, NOW)
    assert cast(Any, collect(call)[0]).reason is None


@pytest.mark.parametrize("status", [Status.SUCCEEDED, Status.FAILED, Status.CANCELLED])
def test_cancel_of_a_terminal_call_is_refused_naming_its_state(status: Status) -> None:
    call = _in(status)
    before = call.describe()
    with pytest.raises(InvalidTransitionError) as raised:
        call.cancel("too late", NOW + timedelta(hours=1))
    assert raised.value.status == status
    assert raised.value.command == "cancel"
    assert status.value in str(raised.value)
    assert collect(call) == []
    assert call.describe() == before


@pytest.mark.parametrize("status_code", [200, 404, 503])
def test_after_cancel_the_running_attempts_late_outcome_is_ignored(status_code: int) -> None:
    call = _in(Status.RUNNING)
    outcome = _outcome(call, status_code)
    call.cancel(None, DUE + timedelta(seconds=1))
    collect(call)
    assert call.record_outcome(outcome, DUE + timedelta(seconds=2)) is False
    assert collect(call) == []
    assert call.status is Status.CANCELLED
    assert call.finished_at == DUE + timedelta(seconds=1)


@pytest.mark.parametrize("status", [Status.SCHEDULED, Status.PAUSED])
def test_a_cancelled_call_never_starts(status: Status) -> None:
    call = _in(status)
    call.cancel(None, NOW)
    collect(call)
    assert call.start(1, DUE + timedelta(days=1)) is None
    assert collect(call) == []


# --- pause -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.SCHEDULED])
def test_pause_records_paused(status: Status) -> None:
    call = _in(status)
    assert call.pause(NOW) is True
    events = collect(call)
    assert names(events) == ["Paused"]
    assert cast(Any, events[0]).paused_at == NOW
    assert call.status is Status.PAUSED
    assert not call.is_terminal


def test_a_paused_call_never_starts() -> None:
    call = _in(Status.PAUSED)
    assert call.start(1, DUE) is None
    assert call.start(1, DUE + timedelta(days=30)) is None
    assert collect(call) == []
    assert call.status is Status.PAUSED


def test_pause_of_a_paused_call_changes_nothing() -> None:
    call = _in(Status.PAUSED)
    assert call.pause(NOW + timedelta(seconds=1)) is False
    assert collect(call) == []


@pytest.mark.parametrize(
    "status", [Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.CANCELLED]
)
def test_pause_of_a_running_or_terminal_call_is_refused(status: Status) -> None:
    call = _in(status)
    with pytest.raises(InvalidTransitionError) as raised:
        call.pause(NOW)
    assert raised.value.status == status
    assert raised.value.command == "pause"
    assert collect(call) == []
    assert call.status is status


# --- resume ------------------------------------------------------------------------------


def test_resume_before_the_due_time_reschedules_at_the_due_time() -> None:
    call = _in(Status.PAUSED)
    at = DUE - timedelta(minutes=1)
    assert call.resume(at) is True
    events = collect(call)
    assert names(events) == ["Resumed", "Scheduled"]
    resumed, scheduled = cast(list[Any], events)
    assert resumed.resumed_at == at
    assert scheduled.attempt == 1
    assert scheduled.reason == "resumed"
    assert scheduled.due_at == DUE
    assert call.status is Status.SCHEDULED
    assert call.start(1, DUE - timedelta(seconds=1)) is None
    assert call.start(1, DUE) is not None


def test_resume_after_the_due_time_reschedules_now() -> None:
    call = _in(Status.PAUSED)
    at = DUE + timedelta(hours=2)
    assert call.resume(at) is True
    scheduled = cast(Any, collect(call)[-1])
    assert scheduled.due_at == at
    assert call.due_at == at
    assert call.start(1, at) == execution_id_for(call.id, 1)


def test_resume_keeps_the_attempt_number_of_a_retry() -> None:
    call = _in(Status.RUNNING)
    call.record_outcome(_outcome(call, 503), DUE)
    assert call.attempt == 2
    call.pause(DUE)
    collect(call)
    assert call.resume(DUE + timedelta(hours=1)) is True
    scheduled = cast(Any, collect(call)[-1])
    assert scheduled.attempt == 2
    assert call.attempt == 2


@pytest.mark.parametrize("status", [Status.SCHEDULED, Status.RUNNING])
def test_resume_of_a_call_that_is_not_paused_changes_nothing(status: Status) -> None:
    call = _in(status)
    before = call.describe()
    assert call.resume(NOW) is False
    assert collect(call) == []
    assert call.describe() == before


@pytest.mark.parametrize("status", [Status.SUCCEEDED, Status.FAILED, Status.CANCELLED])
def test_resume_of_a_terminal_call_is_refused(status: Status) -> None:
    call = _in(status)
    with pytest.raises(InvalidTransitionError) as raised:
        call.resume(NOW)
    assert raised.value.status == status
    assert raised.value.command == "resume"
    assert collect(call) == []


# --- manual retry ------------------------------------------------------------------------


def test_retry_of_a_failed_call_schedules_the_next_attempt_now() -> None:
    call = _in(Status.FAILED)
    first_execution = call.execution_id
    at = DUE + timedelta(hours=1)
    call.retry(at)
    events = collect(call)
    assert names(events) == ["RetryRequested", "Scheduled"]
    requested, scheduled = cast(list[Any], events)
    assert requested.attempt == 2
    assert requested.due_at == at
    assert scheduled.attempt == 2
    assert scheduled.reason == "manual"
    assert scheduled.due_at == at
    assert call.status is Status.SCHEDULED
    assert call.attempt == 2
    assert call.finished_at is None
    assert not call.is_terminal
    second_execution = call.start(2, at)
    assert second_execution == execution_id_for(call.id, 2)
    assert second_execution != first_execution
    assert names(collect(call)) == ["Started"]
    assert call.record_outcome(_outcome(call, 200), at) is True
    assert names(collect(call)) == ["Succeeded"]
    assert _status(call) is Status.SUCCEEDED


def test_retry_at_a_future_due_time_waits_for_it() -> None:
    call = _in(Status.FAILED)
    due = DUE + timedelta(days=1)
    call.retry(DUE, due_at=due)
    assert call.due_at == due
    assert call.start(2, due - timedelta(seconds=1)) is None
    assert call.start(2, due) is not None


def test_retry_with_a_due_time_in_the_past_is_clamped_to_now() -> None:
    call = _in(Status.FAILED)
    now = DUE + timedelta(hours=1)
    call.retry(now, due_at=NOW)
    requested, scheduled = cast(list[Any], collect(call))
    assert requested.due_at == now
    assert scheduled.due_at == now
    assert call.due_at == now


def test_an_outcome_of_the_failed_attempt_after_a_manual_retry_is_ignored() -> None:
    call = _in(Status.FAILED)
    stale = _outcome(call, 200)
    call.retry(DUE)
    collect(call)
    assert call.record_outcome(stale, DUE) is False
    call.start(2, DUE)
    assert call.record_outcome(stale, DUE) is False
    assert names(collect(call)) == ["Started"]


def test_the_attempt_counter_continues_after_a_manual_retry_of_an_exhausted_call() -> None:
    call = ServiceCall.submit(
        id=new_service_call_id(),
        tenant_id="t",
        name="n",
        request=REQUEST,
        due_at=DUE,
        retry_policy=RetryPolicy(max_attempts=2),
    )
    now = DUE
    for _ in range(2):
        assert call.start(call.attempt, now) is not None
        call.record_outcome(_outcome(call, 503), now)
        now = max(now, call.due_at)
    assert call.status is Status.FAILED
    assert call.attempt == 2
    call.retry(now)
    assert call.attempt == 3
    call.start(3, now)
    call.record_outcome(_outcome(call, 503), now)
    events = collect(call)
    assert call.status is Status.FAILED
    assert cast(Any, events[-1]).reason == "attempts_exhausted"
    assert cast(Any, events[-1]).attempt == 3


def test_a_manual_retry_restarts_the_retry_duration_window() -> None:
    policy = RetryPolicy(max_retry_duration_seconds=60.0, max_attempts=10)
    call = ServiceCall.submit(
        id=new_service_call_id(),
        tenant_id="t",
        name="n",
        request=REQUEST,
        due_at=DUE,
        retry_policy=policy,
    )
    call.start(1, DUE)
    call.record_outcome(_outcome(call, 404), DUE)
    later = DUE + timedelta(hours=5)  # far beyond the first window
    call.retry(later)
    call.start(2, later)
    call.record_outcome(_outcome(call, 503), later)
    assert call.status is Status.SCHEDULED
    assert call.attempt == 3


@pytest.mark.parametrize(
    "status",
    [
        Status.SCHEDULED,
        Status.PAUSED,
        Status.RUNNING,
        Status.SUCCEEDED,
        Status.CANCELLED,
    ],
)
def test_retry_of_a_call_that_has_not_failed_is_refused(status: Status) -> None:
    call = _in(status)
    before = call.describe()
    with pytest.raises(InvalidTransitionError) as raised:
        call.retry(NOW)
    assert raised.value.status == status
    assert raised.value.command == "retry"
    assert collect(call) == []
    assert call.describe() == before


# --- history -----------------------------------------------------------------------------


def test_a_full_lifecycle_rebuilds_from_its_events() -> None:
    call = ServiceCall.submit(
        id=new_service_call_id(), tenant_id="t", name="n", request=REQUEST, due_at=DUE
    )
    events = collect(call)
    call.pause(NOW)
    call.resume(DUE + timedelta(seconds=10))
    call.start(1, DUE + timedelta(seconds=10))
    call.record_outcome(_outcome(call, 404), DUE + timedelta(seconds=11))
    call.retry(DUE + timedelta(minutes=1))
    call.start(2, DUE + timedelta(minutes=1))
    call.cancel("stop", DUE + timedelta(minutes=2))
    events += collect(call)
    assert names(events) == [
        "Submitted",
        "Paused",
        "Resumed",
        "Scheduled",
        "Started",
        "AttemptFailed",
        "Failed",
        "RetryRequested",
        "Scheduled",
        "Started",
        "Cancelled",
    ]
    _rebuilds(call, events)
    assert call.status in TERMINAL
    assert all(type(e).TOPIC.startswith("duecall:ServiceCall.") for e in events)
