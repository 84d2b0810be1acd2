"""The ServiceCall aggregate: every transition, and every rejected one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

import pytest

from domain.ids import execution_id_for, new_service_call_id
from domain.outcome import AttemptOutcome
from domain.request import RequestSpec
from domain.retry_policy import Jitter, RetryPolicy
from domain.service_call import TERMINAL, ServiceCall, Status
from tests.support.domain_events import collect, names, rebuild

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
DUE = NOW + timedelta(minutes=5)
REQUEST = RequestSpec(
    "post",
    "https://api.example.com/hooks/1",
    headers={"X-Trace": "abc"},
    body='{"x": 1}',
    timeout_seconds=12.5,
)




def _success(execution_id: UUID, attempt: int = 1) -> AttemptOutcome:
    return AttemptOutcome(
        execution_id=str(execution_id),
        attempt=attempt,
        succeeded=True,
        duration_ms=42.0,
        status_code=200,
    )


def _failure(
    execution_id: UUID,
    attempt: int = 1,
    status_code: int = 503,
    retry_after_seconds: float | None = None,
) -> AttemptOutcome:
    return AttemptOutcome(
        execution_id=str(execution_id),
        attempt=attempt,
        succeeded=False,
        duration_ms=17.5,
        status_code=status_code,
        error_kind="http_error",
        message=f"HTTP {status_code}",
        retry_after_seconds=retry_after_seconds,
    )


def _error(execution_id: UUID, kind: str, attempt: int = 1) -> AttemptOutcome:
    return AttemptOutcome(
        execution_id=str(execution_id),
        attempt=attempt,
        succeeded=False,
        duration_ms=30_000.0,
        error_kind=kind,
        message=f"failed: {kind}",
    )


def _submit(policy: RetryPolicy | None = None) -> ServiceCall:
    call = ServiceCall.submit(
        id=new_service_call_id(),
        tenant_id="tenant-a",
        name="n",
        request=REQUEST,
        due_at=DUE,
        retry_policy=policy,
    )
    collect(call)
    return call


def _start(call: ServiceCall, at: datetime) -> UUID:
    execution_id = call.start(call.attempt, at)
    assert execution_id is not None
    collect(call)
    return execution_id


NO_JITTER = RetryPolicy(
    max_attempts=4, initial_backoff_seconds=2.0, multiplier=3.0, jitter=Jitter.NONE
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
    collect(call)
    return call


@pytest.fixture
def running(call: ServiceCall) -> ServiceCall:
    assert call.start(1, DUE) is not None
    collect(call)
    return call


# --- submit ------------------------------------------------------------------------------


def test_submit_records_submitted_alone_its_first_attempt_due() -> None:
    call_id = new_service_call_id()
    call = ServiceCall.submit(
        id=call_id, tenant_id="tenant-a", name="n", request=REQUEST, due_at=DUE
    )
    events = collect(call)
    assert names(events) == ["Submitted"]
    (submitted,) = cast(list[Any], events)
    assert submitted.originator_id == call_id
    assert submitted.tenant_id == "tenant-a"
    assert submitted.method == "POST"
    assert submitted.url == REQUEST.url
    assert submitted.headers == {"X-Trace": "abc"}
    assert submitted.body == '{"x": 1}'
    assert submitted.timeout_seconds == 12.5
    assert submitted.due_at == DUE
    assert submitted.originator_version == 1
    assert (call.status, call.attempt, call.due_at) == (Status.SCHEDULED, 1, DUE)


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
    assert collect(call) == []
    assert call.status is Status.SCHEDULED


def test_start_of_the_current_attempt_when_due_records_started(call: ServiceCall) -> None:
    execution_id = call.start(1, DUE)
    assert execution_id == execution_id_for(call.id, 1)
    events = collect(call)
    assert names(events) == ["Started"]
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
    assert collect(running) == []
    assert running.status is Status.RUNNING


@pytest.mark.parametrize("attempt", [0, 2, 3, -1])
def test_start_with_a_wrong_attempt_number_records_nothing(call: ServiceCall, attempt: int) -> None:
    assert call.start(attempt, DUE) is None
    assert collect(call) == []
    assert call.status is Status.SCHEDULED


@pytest.mark.parametrize("succeeded", [True, False])
def test_start_of_a_finished_call_records_nothing(running: ServiceCall, succeeded: bool) -> None:
    eid = execution_id_for(running.id, 1)
    running.record_outcome(_success(eid) if succeeded else _failure(eid, status_code=404), DUE)
    collect(running)
    assert running.is_terminal
    assert running.start(1, DUE + timedelta(days=1)) is None
    assert running.start(2, DUE + timedelta(days=1)) is None
    assert collect(running) == []


# --- record_outcome ----------------------------------------------------------------------


def test_a_successful_outcome_records_succeeded_and_ends_the_call(running: ServiceCall) -> None:
    execution_id = execution_id_for(running.id, 1)
    finished = DUE + timedelta(seconds=2)
    assert running.record_outcome(_success(execution_id), finished) is True
    events = collect(running)
    assert names(events) == ["Succeeded"]
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


def test_a_404_records_attempt_failed_then_failed_as_not_retryable(running: ServiceCall) -> None:
    execution_id = execution_id_for(running.id, 1)
    finished = DUE + timedelta(seconds=2)
    assert running.record_outcome(_failure(execution_id, status_code=404), finished) is True
    events = collect(running)
    assert names(events) == ["AttemptFailed", "Failed"]
    attempt_failed, failed = cast(list[Any], events)
    assert attempt_failed.attempt == 1
    assert attempt_failed.execution_id == str(execution_id)
    assert attempt_failed.error_kind == "http_error"
    assert attempt_failed.status_code == 404
    assert attempt_failed.message == "HTTP 404"
    assert attempt_failed.retryable is False
    assert failed.attempt == 1
    assert failed.execution_id == str(execution_id)
    assert failed.error_kind == "http_error"
    assert failed.status_code == 404
    assert failed.message == "HTTP 404"
    assert failed.reason == "not_retryable"
    assert failed.finished_at == finished
    assert running.status is Status.FAILED
    assert running.is_terminal
    assert running.finished_at == finished
    assert running.last_status_code == 404
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
    assert running.status is Status.SCHEDULED  # a timeout retries by default


@pytest.mark.parametrize("attempt", [0, 2, 7])
def test_an_outcome_for_a_wrong_attempt_is_ignored(running: ServiceCall, attempt: int) -> None:
    outcome = _success(execution_id_for(running.id, attempt), attempt=attempt)
    assert running.record_outcome(outcome, DUE) is False
    assert collect(running) == []
    assert running.status is Status.RUNNING


@pytest.mark.parametrize("succeeded", [True, False])
def test_an_outcome_when_not_running_is_ignored(call: ServiceCall, succeeded: bool) -> None:
    eid = execution_id_for(call.id, 1)
    assert call.record_outcome(_success(eid) if succeeded else _failure(eid), DUE) is False
    assert collect(call) == []
    assert call.status is Status.SCHEDULED


@pytest.mark.parametrize(
    ("first_succeeded", "second_succeeded"),
    [(True, True), (True, False), (False, True), (False, False)],
)
def test_a_duplicate_outcome_after_the_terminal_one_is_ignored(
    running: ServiceCall, first_succeeded: bool, second_succeeded: bool
) -> None:
    eid = execution_id_for(running.id, 1)
    first = _success(eid) if first_succeeded else _failure(eid, status_code=404)
    second = _success(eid) if second_succeeded else _failure(eid, status_code=404)
    assert running.record_outcome(first, DUE) is True
    terminal_status = running.status
    collect(running)
    assert running.record_outcome(second, DUE + timedelta(seconds=5)) is False
    assert collect(running) == []
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
    events = collect(call)
    call.start(1, DUE - timedelta(seconds=1))  # too early: ignored
    execution_id = call.start(1, DUE)
    assert execution_id is not None
    outcome = _success(execution_id) if succeeded else _failure(execution_id, status_code=404)
    call.record_outcome(outcome, DUE + timedelta(seconds=1))
    call.record_outcome(outcome, DUE + timedelta(seconds=2))  # duplicate: ignored
    events += collect(call)
    return call, events


@pytest.mark.parametrize("succeeded", [True, False])
def test_the_call_rebuilt_from_its_events_describes_the_same(succeeded: bool) -> None:
    call, events = _full_history(succeeded)
    assert names(events) == [
        "Submitted",
        "Started",
        *(["Succeeded"] if succeeded else ["AttemptFailed", "Failed"]),
    ]
    rebuilt = rebuild(ServiceCall, events)
    assert rebuilt.describe() == call.describe()
    assert rebuilt.execution_id == call.execution_id
    assert rebuilt.version == call.version == len(events)


def test_a_call_rebuilt_after_each_event_matches_the_live_call_at_that_point() -> None:
    call = ServiceCall.submit(
        id=new_service_call_id(), tenant_id="t", name="n", request=REQUEST, due_at=DUE
    )
    events = collect(call)
    assert rebuild(ServiceCall, events).describe() == call.describe()
    call.start(1, DUE)
    events += collect(call)
    assert rebuild(ServiceCall, events).describe() == call.describe()


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
        "follow_redirects": False,
        "secret_headers": [],
    }
    assert described["finished_at"] is None
    assert described["version"] == 2


@pytest.mark.parametrize("succeeded", [True, False])
def test_event_topics_all_start_with_duecall(succeeded: bool) -> None:
    _, events = _full_history(succeeded)
    topics = [type(e).TOPIC for e in events]
    assert all(topic.startswith("duecall:") for topic in topics), topics
    assert topics[0] == "duecall:ServiceCall.Submitted"
    assert ServiceCall.TOPIC == "duecall:ServiceCall"


def test_every_recorded_event_is_a_service_call_event() -> None:
    _, events = _full_history(succeeded=True)
    assert all(isinstance(e, ServiceCall.Event) for e in events)


def test_an_outcome_from_another_execution_is_ignored(running: ServiceCall) -> None:
    other = execution_id_for(new_service_call_id(), 1)
    assert running.record_outcome(_success(other), NOW) is False
    assert collect(running) == []
    assert running.status == Status.RUNNING


# --- retries -----------------------------------------------------------------------------


def test_submit_records_the_retry_policy(call: ServiceCall) -> None:
    assert call.retry_policy == RetryPolicy()
    assert call.describe()["retry_policy"] == RetryPolicy().as_dict()
    custom = ServiceCall.submit(
        id=new_service_call_id(),
        tenant_id="t",
        name="n",
        request=REQUEST,
        due_at=DUE,
        retry_policy=NO_JITTER,
    )
    submitted = cast(Any, collect(custom)[0])
    assert submitted.retry_policy == NO_JITTER.as_dict()
    assert custom.retry_policy == NO_JITTER


def test_a_retryable_failure_with_attempts_left_schedules_the_next_attempt(
    running: ServiceCall,
) -> None:
    execution_id = execution_id_for(running.id, 1)
    finished = DUE + timedelta(seconds=2)
    assert running.record_outcome(_failure(execution_id), finished, random_fraction=0.5) is True
    events = collect(running)
    assert names(events) == ["AttemptFailed", "Scheduled"]
    attempt_failed, scheduled = cast(list[Any], events)
    assert attempt_failed.attempt == 1
    assert attempt_failed.status_code == 503
    assert attempt_failed.retryable is True
    # default policy: full jitter over initial 1 s for attempt 1
    assert scheduled.attempt == 2
    assert scheduled.reason == "backoff"
    assert scheduled.delay_seconds == 0.5
    assert scheduled.due_at == finished + timedelta(seconds=0.5)
    assert running.status is Status.SCHEDULED
    assert running.attempt == 2
    assert running.due_at == finished + timedelta(seconds=0.5)
    assert running.finished_at is None
    assert not running.is_terminal
    assert running.last_status_code == 503
    assert running.last_error_kind == "http_error"


@pytest.mark.parametrize("status_code", [408, 425, 429, 500, 502, 503, 504, 599])
def test_default_retryable_status_codes_schedule_a_retry(
    running: ServiceCall, status_code: int
) -> None:
    eid = execution_id_for(running.id, 1)
    assert running.record_outcome(_failure(eid, status_code=status_code), DUE) is True
    assert names(collect(running)) == ["AttemptFailed", "Scheduled"]
    assert running.status is Status.SCHEDULED
    assert running.attempt == 2


@pytest.mark.parametrize("status_code", [300, 400, 401, 403, 404, 409, 410, 422])
def test_other_status_codes_fail_at_once_as_not_retryable(
    running: ServiceCall, status_code: int
) -> None:
    eid = execution_id_for(running.id, 1)
    assert running.record_outcome(_failure(eid, status_code=status_code), DUE) is True
    events = collect(running)
    assert names(events) == ["AttemptFailed", "Failed"]
    assert cast(Any, events[0]).retryable is False
    assert cast(Any, events[1]).reason == "not_retryable"
    assert running.status is Status.FAILED


@pytest.mark.parametrize("kind", ["timeout", "network", "lost"])
def test_timeouts_network_errors_and_lost_executions_retry_by_default(
    running: ServiceCall, kind: str
) -> None:
    assert running.record_outcome(_error(execution_id_for(running.id, 1), kind), DUE) is True
    assert names(collect(running)) == ["AttemptFailed", "Scheduled"]
    assert running.last_error_kind == kind
    assert running.last_status_code is None


@pytest.mark.parametrize("kind", ["rejected", "circuit_open"])
def test_error_kinds_not_in_retry_on_fail_as_not_retryable(running: ServiceCall, kind: str) -> None:
    assert running.record_outcome(_error(execution_id_for(running.id, 1), kind), DUE) is True
    events = collect(running)
    assert names(events) == ["AttemptFailed", "Failed"]
    assert cast(Any, events[1]).reason == "not_retryable"
    assert cast(Any, events[1]).error_kind == kind


def test_a_custom_retry_on_decides_what_retries() -> None:
    call = _submit(RetryPolicy(retry_on=("404", "rejected")))
    eid = _start(call, DUE)
    assert call.record_outcome(_failure(eid, status_code=404), DUE) is True
    assert names(collect(call)) == ["AttemptFailed", "Scheduled"]
    eid = _start(call, call.due_at)
    assert call.record_outcome(_error(eid, "rejected", attempt=2), call.due_at) is True
    assert names(collect(call)) == ["AttemptFailed", "Scheduled"]
    eid = _start(call, call.due_at)
    assert call.record_outcome(_failure(eid, attempt=3, status_code=503), call.due_at) is True
    failed = collect(call)[-1]
    assert cast(Any, failed).reason == "not_retryable"
    assert call.status is Status.FAILED


def test_backoff_grows_by_the_multiplier_until_attempts_are_exhausted() -> None:
    call = _submit(NO_JITTER)
    now = DUE
    delays = []
    for attempt in (1, 2, 3):
        eid = _start(call, now)
        now += timedelta(seconds=1)
        assert call.record_outcome(_failure(eid, attempt=attempt), now) is True
        _, scheduled = cast(list[Any], collect(call))
        assert type(scheduled).__name__ == "Scheduled"
        assert scheduled.attempt == attempt + 1
        assert scheduled.reason == "backoff"
        assert scheduled.due_at == now + timedelta(seconds=scheduled.delay_seconds)
        delays.append(scheduled.delay_seconds)
        now = scheduled.due_at
    assert delays == [2.0, 6.0, 18.0]
    eid = _start(call, now)
    assert call.record_outcome(_failure(eid, attempt=4), now) is True
    events = collect(call)
    assert names(events) == ["AttemptFailed", "Failed"]
    failed = cast(Any, events[1])
    assert failed.reason == "attempts_exhausted"
    assert failed.attempt == 4
    assert call.status is Status.FAILED
    assert call.finished_at == now


def test_the_backoff_is_capped_by_max_backoff() -> None:
    policy = RetryPolicy(
        max_attempts=10, initial_backoff_seconds=5, max_backoff_seconds=7, jitter=Jitter.NONE
    )
    call = _submit(policy)
    eid = _start(call, DUE)
    call.record_outcome(_failure(eid), DUE)
    assert cast(Any, collect(call)[-1]).delay_seconds == 5.0
    eid = _start(call, call.due_at)
    call.record_outcome(_failure(eid, attempt=2), call.due_at)
    assert cast(Any, collect(call)[-1]).delay_seconds == 7.0


def test_a_policy_with_one_attempt_fails_at_once_as_attempts_exhausted() -> None:
    call = _submit(RetryPolicy(max_attempts=1))
    eid = _start(call, DUE)
    assert call.record_outcome(_failure(eid), DUE) is True
    events = collect(call)
    assert names(events) == ["AttemptFailed", "Failed"]
    assert cast(Any, events[0]).retryable is True
    assert cast(Any, events[1]).reason == "attempts_exhausted"


def test_max_retry_duration_fails_the_call_as_duration_exhausted() -> None:
    policy = RetryPolicy(
        max_attempts=10,
        initial_backoff_seconds=4.0,
        jitter=Jitter.NONE,
        max_retry_duration_seconds=10.0,
    )
    call = _submit(policy)
    eid = _start(call, DUE)
    assert call.record_outcome(_failure(eid), DUE) is True  # next due DUE+4 <= DUE+10
    assert names(collect(call)) == ["AttemptFailed", "Scheduled"]
    eid = _start(call, DUE + timedelta(seconds=4))
    assert call.record_outcome(_failure(eid, attempt=2), DUE + timedelta(seconds=5)) is True
    events = collect(call)  # next due would be DUE+13 > DUE+10
    assert names(events) == ["AttemptFailed", "Failed"]
    assert cast(Any, events[1]).reason == "duration_exhausted"
    assert call.status is Status.FAILED


def test_a_retry_ending_exactly_at_the_duration_limit_is_still_scheduled() -> None:
    policy = RetryPolicy(
        initial_backoff_seconds=10.0, jitter=Jitter.NONE, max_retry_duration_seconds=10.0
    )
    call = _submit(policy)
    eid = _start(call, DUE)
    assert call.record_outcome(_failure(eid), DUE) is True
    assert call.status is Status.SCHEDULED
    assert call.due_at == DUE + timedelta(seconds=10)


@pytest.mark.parametrize("status_code", [429, 503])
def test_retry_after_on_429_and_503_sets_the_delay(status_code: int) -> None:
    call = _submit(RetryPolicy(jitter=Jitter.NONE))
    eid = _start(call, DUE)
    finished = DUE + timedelta(seconds=1)
    outcome = _failure(eid, status_code=status_code, retry_after_seconds=42.0)
    assert call.record_outcome(outcome, finished) is True
    scheduled = cast(Any, collect(call)[-1])
    assert scheduled.reason == "retry_after"
    assert scheduled.delay_seconds == 42.0
    assert scheduled.due_at == finished + timedelta(seconds=42)
    assert call.due_at == finished + timedelta(seconds=42)


def test_retry_after_is_capped_by_max_backoff() -> None:
    call = _submit(RetryPolicy(max_backoff_seconds=60.0))
    eid = _start(call, DUE)
    assert call.record_outcome(_failure(eid, status_code=429, retry_after_seconds=3600), DUE)
    scheduled = cast(Any, collect(call)[-1])
    assert scheduled.reason == "retry_after"
    assert scheduled.delay_seconds == 60.0
    assert scheduled.due_at == DUE + timedelta(seconds=60)


def test_retry_after_of_zero_schedules_the_next_attempt_now() -> None:
    call = _submit()
    eid = _start(call, DUE)
    assert call.record_outcome(_failure(eid, status_code=503, retry_after_seconds=0.0), DUE)
    assert call.due_at == DUE
    assert call.start(2, DUE) is not None


@pytest.mark.parametrize("status_code", [500, 502, 504])
def test_retry_after_on_other_statuses_is_ignored(status_code: int) -> None:
    call = _submit(RetryPolicy(jitter=Jitter.NONE))
    eid = _start(call, DUE)
    outcome = _failure(eid, status_code=status_code, retry_after_seconds=42.0)
    assert call.record_outcome(outcome, DUE) is True
    scheduled = cast(Any, collect(call)[-1])
    assert scheduled.reason == "backoff"
    assert scheduled.delay_seconds == 1.0


def test_retry_after_beyond_max_retry_duration_fails_the_call() -> None:
    call = _submit(RetryPolicy(max_retry_duration_seconds=30.0))
    eid = _start(call, DUE)
    assert call.record_outcome(_failure(eid, status_code=503, retry_after_seconds=31), DUE)
    assert cast(Any, collect(call)[-1]).reason == "duration_exhausted"
    assert call.status is Status.FAILED


def test_after_a_retry_is_scheduled_the_old_attempt_is_stale(running: ServiceCall) -> None:
    first = execution_id_for(running.id, 1)
    assert running.record_outcome(_failure(first), DUE) is True
    collect(running)
    due = running.due_at
    # late duplicates of attempt 1 change nothing
    assert running.start(1, due) is None
    assert running.record_outcome(_failure(first), due) is False
    assert running.record_outcome(_success(first), due) is False
    assert collect(running) == []
    # attempt 2 cannot start before its due time, then starts with its own execution id
    assert running.start(2, due - timedelta(microseconds=1)) is None
    second = running.start(2, due)
    assert second == execution_id_for(running.id, 2)
    assert second != first
    # an outcome carrying attempt 2 but attempt 1's execution id is not this execution's
    stale = _success(first, attempt=2)
    assert running.record_outcome(stale, due) is False
    assert running.record_outcome(_success(second, attempt=2), due) is True
    events = collect(running)
    assert names(events) == ["Started", "Succeeded"]
    assert cast(Any, events[1]).attempt == 2
    assert running.status is Status.SUCCEEDED


def test_a_call_that_retried_rebuilds_from_its_events() -> None:
    call = ServiceCall.submit(
        id=new_service_call_id(),
        tenant_id="t",
        name="n",
        request=REQUEST,
        due_at=DUE,
        retry_policy=NO_JITTER,
    )
    events = collect(call)
    now = DUE
    for attempt in (1, 2):
        eid = call.start(attempt, now)
        assert eid is not None
        call.record_outcome(_failure(eid, attempt=attempt, retry_after_seconds=3), now)
        events += collect(call)
        assert rebuild(ServiceCall, events).describe() == call.describe()
        now = call.due_at
    eid = call.start(3, now)
    assert eid is not None
    call.record_outcome(_success(eid, attempt=3), now)
    events += collect(call)
    assert names(events) == [
        "Submitted",
        "Started",
        "AttemptFailed",
        "Scheduled",
        "Started",
        "AttemptFailed",
        "Scheduled",
        "Started",
        "Succeeded",
    ]
    rebuilt = rebuild(ServiceCall, events)
    assert rebuilt.describe() == call.describe()
    assert rebuilt.retry_policy == NO_JITTER
    assert rebuilt.version == 9


def test_a_retry_delay_counts_from_when_the_attempt_finished(running: ServiceCall) -> None:
    finished = NOW - timedelta(seconds=0.5)
    outcome = AttemptOutcome(
        str(running.execution_id), 1, False, 5.0, status_code=503, error_kind="http_error",
        retry_after_seconds=2.0, finished_at_epoch=finished.timestamp(),
    )
    assert running.record_outcome(outcome, NOW)
    assert running.due_at == finished + timedelta(seconds=2)
