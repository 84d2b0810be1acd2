"""The ServiceCall aggregate: every transition, and every rejected one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any, cast
from uuid import UUID

import pytest

from domain.ids import execution_id_for, new_service_call_id
from domain.outcome import AttemptOutcome
from domain.request import RequestSpec
from domain.service_call import TERMINAL, ServiceCall, Status

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
DUE = NOW + timedelta(minutes=5)
REQUEST = RequestSpec(
    "post",
    "https://api.example.com/hooks/1",
    headers={"X-Trace": "abc"},
    body='{"x": 1}',
    timeout_seconds=12.5,
)


def _names(events: list[ServiceCall.Event]) -> list[str]:
    return [type(e).__name__ for e in events]


def _rebuild(events: list[ServiceCall.Event]) -> ServiceCall:
    return cast(ServiceCall, reduce(lambda a, e: e.mutate(a), events, None))


def _success(execution_id: UUID, attempt: int = 1) -> AttemptOutcome:
    return AttemptOutcome(
        execution_id=str(execution_id),
        attempt=attempt,
        succeeded=True,
        duration_ms=42.0,
        status_code=200,
    )


def _failure(execution_id: UUID, attempt: int = 1) -> AttemptOutcome:
    return AttemptOutcome(
        execution_id=str(execution_id),
        attempt=attempt,
        succeeded=False,
        duration_ms=17.5,
        status_code=503,
        error_kind="http_error",
        message="HTTP 503",
    )


@pytest.fixture
def call() -> ServiceCall:
    call = ServiceCall.submit(
        id=new_service_call_id(),
        tenant_id="tenant-a",
        name="nightly-sync",
        request=REQUEST,
        due_at=DUE,
        tags=["nightly", "sync"],
        correlation_id="corr-1",
        idempotency_key="idem-1",
    )
    call.collect_events()
    return call


@pytest.fixture
def running(call: ServiceCall) -> ServiceCall:
    assert call.start(1, DUE) is not None
    call.collect_events()
    return call


# --- submit ------------------------------------------------------------------------------


def test_submit_records_submitted_then_scheduled_for_attempt_one() -> None:
    call_id = new_service_call_id()
    call = ServiceCall.submit(
        id=call_id, tenant_id="tenant-a", name="n", request=REQUEST, due_at=DUE
    )
    events = call.collect_events()
    assert _names(events) == ["Submitted", "Scheduled"]
    submitted, scheduled = cast(list[Any], events)
    assert submitted.originator_id == call_id
    assert submitted.tenant_id == "tenant-a"
    assert submitted.method == "POST"
    assert submitted.url == REQUEST.url
    assert submitted.headers == {"X-Trace": "abc"}
    assert submitted.body == '{"x": 1}'
    assert submitted.timeout_seconds == 12.5
    assert submitted.due_at == DUE
    assert scheduled.attempt == 1
    assert scheduled.due_at == DUE
    assert scheduled.reason == "submitted"
    assert [e.originator_version for e in events] == [1, 2]


def test_submit_leaves_the_call_scheduled_for_attempt_one(call: ServiceCall) -> None:
    assert call.status is Status.SCHEDULED
    assert call.attempt == 1
    assert call.due_at == DUE
    assert call.request == RequestSpec("POST", REQUEST.url, {"X-Trace": "abc"}, '{"x": 1}', 12.5)
    assert call.tags == ["nightly", "sync"]
    assert call.correlation_id == "corr-1"
    assert call.idempotency_key == "idem-1"
    assert call.execution_id is None
    assert call.finished_at is None
    assert not call.is_terminal


def test_submit_without_tags_records_an_empty_tag_list() -> None:
    call = ServiceCall.submit(
        id=new_service_call_id(), tenant_id="t", name="n", request=REQUEST, due_at=DUE
    )
    assert call.tags == []
    assert call.correlation_id is None
    assert call.idempotency_key is None


# --- start -------------------------------------------------------------------------------


def test_start_before_due_at_records_nothing_and_returns_none(call: ServiceCall) -> None:
    assert call.start(1, DUE - timedelta(microseconds=1)) is None
    assert call.collect_events() == []
    assert call.status is Status.SCHEDULED


def test_start_of_the_current_attempt_when_due_records_started(call: ServiceCall) -> None:
    execution_id = call.start(1, DUE)
    assert execution_id == execution_id_for(call.id, 1)
    events = call.collect_events()
    assert _names(events) == ["Started"]
    started = cast(Any, events[0])
    assert started.attempt == 1
    assert started.execution_id == execution_id
    assert started.started_at == DUE
    assert call.status is Status.RUNNING
    assert call.execution_id == execution_id


def test_start_after_due_at_is_allowed(call: ServiceCall) -> None:
    assert call.start(1, DUE + timedelta(hours=3)) == execution_id_for(call.id, 1)
    assert call.status is Status.RUNNING


def test_a_duplicate_start_returns_none_and_records_nothing(running: ServiceCall) -> None:
    assert running.start(1, DUE + timedelta(seconds=1)) is None
    assert running.collect_events() == []
    assert running.status is Status.RUNNING


@pytest.mark.parametrize("attempt", [0, 2, 3, -1])
def test_start_with_a_wrong_attempt_number_records_nothing(call: ServiceCall, attempt: int) -> None:
    assert call.start(attempt, DUE) is None
    assert call.collect_events() == []
    assert call.status is Status.SCHEDULED


@pytest.mark.parametrize("succeeded", [True, False])
def test_start_of_a_finished_call_records_nothing(running: ServiceCall, succeeded: bool) -> None:
    eid = execution_id_for(running.id, 1)
    running.record_outcome(_success(eid) if succeeded else _failure(eid), DUE)
    running.collect_events()
    assert running.start(1, DUE + timedelta(days=1)) is None
    assert running.start(2, DUE + timedelta(days=1)) is None
    assert running.collect_events() == []


# --- record_outcome ----------------------------------------------------------------------


def test_a_successful_outcome_records_succeeded_and_ends_the_call(running: ServiceCall) -> None:
    execution_id = execution_id_for(running.id, 1)
    finished = DUE + timedelta(seconds=2)
    assert running.record_outcome(_success(execution_id), finished) is True
    events = running.collect_events()
    assert _names(events) == ["Succeeded"]
    succeeded = cast(Any, events[0])
    assert succeeded.attempt == 1
    assert succeeded.execution_id == str(execution_id)
    assert succeeded.status_code == 200
    assert succeeded.duration_ms == 42.0
    assert succeeded.finished_at == finished
    assert running.status is Status.SUCCEEDED
    assert running.is_terminal
    assert running.finished_at == finished
    assert running.last_status_code == 200
    assert running.last_error_kind is None


def test_a_failed_outcome_records_failed_as_not_retryable(running: ServiceCall) -> None:
    execution_id = execution_id_for(running.id, 1)
    finished = DUE + timedelta(seconds=2)
    assert running.record_outcome(_failure(execution_id), finished) is True
    events = running.collect_events()
    assert _names(events) == ["Failed"]
    failed = cast(Any, events[0])
    assert failed.attempt == 1
    assert failed.execution_id == str(execution_id)
    assert failed.error_kind == "http_error"
    assert failed.status_code == 503
    assert failed.message == "HTTP 503"
    assert failed.reason == "not_retryable"
    assert failed.finished_at == finished
    assert running.status is Status.FAILED
    assert running.is_terminal
    assert running.finished_at == finished
    assert running.last_status_code == 503
    assert running.last_error_kind == "http_error"


def test_a_failure_without_a_status_code_keeps_its_error_kind(running: ServiceCall) -> None:
    outcome = AttemptOutcome(
        execution_id=str(execution_id_for(running.id, 1)),
        attempt=1,
        succeeded=False,
        duration_ms=30_000.0,
        error_kind="timeout",
        message="timed out after 30s",
    )
    assert running.record_outcome(outcome, DUE) is True
    assert running.last_error_kind == "timeout"
    assert running.last_status_code is None


@pytest.mark.parametrize("attempt", [0, 2, 7])
def test_an_outcome_for_a_wrong_attempt_is_ignored(running: ServiceCall, attempt: int) -> None:
    outcome = _success(execution_id_for(running.id, attempt), attempt=attempt)
    assert running.record_outcome(outcome, DUE) is False
    assert running.collect_events() == []
    assert running.status is Status.RUNNING


@pytest.mark.parametrize("succeeded", [True, False])
def test_an_outcome_when_not_running_is_ignored(call: ServiceCall, succeeded: bool) -> None:
    eid = execution_id_for(call.id, 1)
    assert call.record_outcome(_success(eid) if succeeded else _failure(eid), DUE) is False
    assert call.collect_events() == []
    assert call.status is Status.SCHEDULED


@pytest.mark.parametrize(
    ("first_succeeded", "second_succeeded"),
    [(True, True), (True, False), (False, True), (False, False)],
)
def test_a_duplicate_outcome_after_the_terminal_one_is_ignored(
    running: ServiceCall, first_succeeded: bool, second_succeeded: bool
) -> None:
    eid = execution_id_for(running.id, 1)
    first = _success(eid) if first_succeeded else _failure(eid)
    second = _success(eid) if second_succeeded else _failure(eid)
    assert running.record_outcome(first, DUE) is True
    terminal_status = running.status
    running.collect_events()
    assert running.record_outcome(second, DUE + timedelta(seconds=5)) is False
    assert running.collect_events() == []
    assert running.status is terminal_status
    assert running.finished_at == DUE


def test_terminal_statuses_are_succeeded_failed_and_cancelled() -> None:
    assert {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED} == TERMINAL


# --- replay ------------------------------------------------------------------------------


def _full_history(succeeded: bool) -> tuple[ServiceCall, list[ServiceCall.Event]]:
    call = ServiceCall.submit(
        id=new_service_call_id(),
        tenant_id="tenant-a",
        name="n",
        request=REQUEST,
        due_at=DUE,
        tags=["x"],
        correlation_id="c",
    )
    events = call.collect_events()
    call.start(1, DUE - timedelta(seconds=1))  # too early: ignored
    execution_id = call.start(1, DUE)
    assert execution_id is not None
    outcome = _success(execution_id) if succeeded else _failure(execution_id)
    call.record_outcome(outcome, DUE + timedelta(seconds=1))
    call.record_outcome(outcome, DUE + timedelta(seconds=2))  # duplicate: ignored
    events += call.collect_events()
    return call, events


@pytest.mark.parametrize("succeeded", [True, False])
def test_the_call_rebuilt_from_its_events_describes_the_same(succeeded: bool) -> None:
    call, events = _full_history(succeeded)
    assert _names(events) == [
        "Submitted",
        "Scheduled",
        "Started",
        "Succeeded" if succeeded else "Failed",
    ]
    rebuilt = _rebuild(events)
    assert rebuilt.describe() == call.describe()
    assert rebuilt.execution_id == call.execution_id
    assert rebuilt.version == call.version == 4


def test_a_call_rebuilt_after_each_event_matches_the_live_call_at_that_point() -> None:
    call = ServiceCall.submit(
        id=new_service_call_id(), tenant_id="t", name="n", request=REQUEST, due_at=DUE
    )
    events = call.collect_events()
    assert _rebuild(events).describe() == call.describe()
    call.start(1, DUE)
    events += call.collect_events()
    assert _rebuild(events).describe() == call.describe()


def test_describe_reports_plain_values(running: ServiceCall) -> None:
    described = running.describe()
    assert described["id"] == str(running.id)
    assert described["tenant_id"] == "tenant-a"
    assert described["status"] == "running"
    assert described["attempt"] == 1
    assert described["due_at"] == DUE
    assert described["request"] == {
        "method": "POST",
        "url": REQUEST.url,
        "headers": {"X-Trace": "abc"},
        "body": '{"x": 1}',
        "timeout_seconds": 12.5,
    }
    assert described["finished_at"] is None
    assert described["version"] == 3


@pytest.mark.parametrize("succeeded", [True, False])
def test_event_topics_all_start_with_duecall(succeeded: bool) -> None:
    _, events = _full_history(succeeded)
    topics = [type(e).TOPIC for e in events]  # type: ignore[attr-defined]
    assert all(topic.startswith("duecall:") for topic in topics), topics
    assert topics[0] == "duecall:ServiceCall.Submitted"
    assert ServiceCall.TOPIC == "duecall:ServiceCall"


def test_every_recorded_event_is_a_service_call_event() -> None:
    _, events = _full_history(succeeded=True)
    assert all(isinstance(e, ServiceCall.Event) for e in events)


def test_an_outcome_from_another_execution_is_ignored(running: ServiceCall) -> None:
    other = execution_id_for(new_service_call_id(), 1)
    assert running.record_outcome(_success(other), NOW) is False
    assert running.collect_events() == []
    assert running.status == Status.RUNNING
