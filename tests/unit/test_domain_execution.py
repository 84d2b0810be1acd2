"""The Execution aggregate: one HTTP attempt and its single terminal outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

import pytest

from domain.execution import Execution
from domain.ids import execution_id_for, new_service_call_id
from domain.outcome import AttemptOutcome, AttemptResult, ErrorKind, is_success
from domain.request import RequestSpec
from tests.support.domain_events import collect, names, rebuild

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
LATER = NOW + timedelta(milliseconds=250)
REQUEST = RequestSpec(
    "put",
    "https://api.example.com/items/9",
    headers={"Authorization": "Bearer t"},
    body="{}",
    timeout_seconds=5.0,
)




def _begin(attempt: int = 1) -> tuple[Execution, UUID]:
    call_id = new_service_call_id()
    execution = Execution.begin(
        id=execution_id_for(call_id, attempt),
        tenant_id="tenant-a",
        service_call_id=call_id,
        attempt=attempt,
        request=REQUEST,
        now=NOW,
    )
    return execution, call_id


@pytest.fixture
def execution() -> Execution:
    execution, _ = _begin()
    collect(execution)
    return execution


def test_begin_records_started_with_the_request_fields() -> None:
    execution, call_id = _begin(attempt=3)
    events = collect(execution)
    assert names(events) == ["Started"]
    started = cast(Any, events[0])
    assert started.originator_id == execution_id_for(call_id, 3)
    assert started.tenant_id == "tenant-a"
    assert started.service_call_id == call_id
    assert started.attempt == 3
    assert started.method == "PUT"
    assert started.url == "https://api.example.com/items/9"
    assert started.headers == {"Authorization": "Bearer t"}
    assert started.timeout_seconds == 5.0
    assert started.started_at == NOW
    assert started.originator_version == 1


def test_a_begun_execution_is_running(execution: Execution) -> None:
    assert not execution.is_finished
    assert execution.outcome is None
    assert execution.finished_at is None
    assert execution.describe()["outcome"] == "running"


def test_finish_with_200_records_succeeded_and_returns_a_successful_outcome(
    execution: Execution,
) -> None:
    result = AttemptResult(
        duration_ms=12.0,
        status_code=200,
        headers={"Content-Type": "text/plain"},
        body_snippet="ok",
    )
    outcome = execution.finish(result, LATER)
    assert outcome == AttemptOutcome(
        execution_id=str(execution.id),
        attempt=1,
        succeeded=True,
        duration_ms=12.0,
        status_code=200,
        finished_at_epoch=LATER.timestamp(),
    )
    events = collect(execution)
    assert names(events) == ["Succeeded"]
    succeeded = cast(Any, events[0])
    assert succeeded.status_code == 200
    assert succeeded.headers == {"Content-Type": "text/plain"}
    assert succeeded.body_snippet == "ok"
    assert succeeded.finished_at == LATER
    assert succeeded.duration_ms == 12.0
    assert execution.is_finished
    assert execution.outcome == "succeeded"
    assert execution.response_headers == {"Content-Type": "text/plain"}


def test_a_success_without_headers_records_empty_headers(execution: Execution) -> None:
    execution.finish(AttemptResult(duration_ms=1.0, status_code=204), LATER)
    assert execution.response_headers == {}


def test_finish_with_500_records_failed_of_kind_http_error(execution: Execution) -> None:
    outcome = execution.finish(
        AttemptResult(duration_ms=80.0, status_code=500, body_snippet="boom"), LATER
    )
    assert outcome is not None
    assert outcome.succeeded is False
    assert outcome.error_kind == "http_error"
    assert outcome.status_code == 500
    assert outcome.message == "HTTP 500"
    assert outcome.attempt == 1
    assert outcome.execution_id == str(execution.id)
    events = collect(execution)
    assert names(events) == ["Failed"]
    failed = cast(Any, events[0])
    assert failed.error_kind == "http_error"
    assert failed.status_code == 500
    assert failed.message == "HTTP 500"
    assert failed.body_snippet == "boom"
    assert failed.finished_at == LATER
    assert execution.outcome == "failed"


def test_finish_with_a_timeout_records_failed_of_kind_timeout(execution: Execution) -> None:
    result = AttemptResult(
        duration_ms=5_000.0, error_kind=ErrorKind.TIMEOUT, message="timed out after 5s"
    )
    outcome = execution.finish(result, LATER)
    assert outcome is not None
    assert outcome.succeeded is False
    assert outcome.error_kind == "timeout"
    assert outcome.status_code is None
    assert outcome.message == "timed out after 5s"
    events = collect(execution)
    assert names(events) == ["Failed"]
    failed = cast(Any, events[0])
    assert failed.error_kind == "timeout"
    assert type(failed.error_kind) is str


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_every_error_kind_is_recorded_by_its_value(execution: Execution, kind: ErrorKind) -> None:
    outcome = execution.finish(AttemptResult(duration_ms=1.0, error_kind=kind), LATER)
    assert outcome is not None
    assert outcome.error_kind == kind.value
    assert not outcome.succeeded


def test_an_error_kind_wins_over_a_2xx_status(execution: Execution) -> None:
    result = AttemptResult(duration_ms=1.0, status_code=200, error_kind=ErrorKind.NETWORK)
    outcome = execution.finish(result, LATER)
    assert outcome is not None
    assert not outcome.succeeded
    assert outcome.error_kind == "network"


@pytest.mark.parametrize(
    "second",
    [
        AttemptResult(duration_ms=2.0, status_code=200),
        AttemptResult(duration_ms=2.0, status_code=500),
        AttemptResult(duration_ms=2.0, error_kind=ErrorKind.LOST),
    ],
)
@pytest.mark.parametrize(
    "first",
    [
        AttemptResult(duration_ms=1.0, status_code=201),
        AttemptResult(duration_ms=1.0, status_code=404),
        AttemptResult(duration_ms=1.0, error_kind=ErrorKind.TIMEOUT),
    ],
)
def test_a_second_finish_returns_none_and_records_nothing(
    execution: Execution, first: AttemptResult, second: AttemptResult
) -> None:
    assert execution.finish(first, LATER) is not None
    before = execution.describe()
    assert execution.finish(second, LATER + timedelta(seconds=1)) is None
    events = collect(execution)
    assert len([e for e in events if type(e).__name__ in {"Succeeded", "Failed"}]) == 1
    assert len(events) == 1
    assert execution.describe() == before


def test_outcome_message_repeats_the_recorded_outcome(execution: Execution) -> None:
    outcome = execution.finish(AttemptResult(duration_ms=3.0, status_code=502), LATER)
    assert execution.outcome_message() == outcome


@pytest.mark.parametrize("status_code", [200, 201, 204, 250, 299])
def test_2xx_status_codes_are_success(status_code: int) -> None:
    assert is_success(status_code)
    assert AttemptResult(duration_ms=1.0, status_code=status_code).succeeded


@pytest.mark.parametrize("status_code", [100, 199, 300, 301, 404, 500, 503])
def test_other_status_codes_are_not_success(status_code: int) -> None:
    assert not is_success(status_code)
    assert not AttemptResult(duration_ms=1.0, status_code=status_code).succeeded


@pytest.mark.parametrize(
    "result",
    [
        AttemptResult(duration_ms=9.0, status_code=200, headers={"A": "b"}, body_snippet="x"),
        AttemptResult(duration_ms=9.0, status_code=418, body_snippet="teapot"),
        AttemptResult(duration_ms=9.0, error_kind=ErrorKind.CIRCUIT_OPEN, message="open"),
    ],
)
def test_the_execution_rebuilt_from_its_events_equals_the_live_one(result: AttemptResult) -> None:
    execution, _ = _begin(attempt=2)
    execution.finish(result, LATER)
    execution.finish(result, LATER + timedelta(seconds=1))  # duplicate: ignored
    events = collect(execution)
    assert names(events)[0] == "Started"
    assert len(events) == 2
    rebuilt = rebuild(Execution, events)
    assert rebuilt.describe() == execution.describe()
    assert rebuilt.version == execution.version == 2
    assert rebuilt.outcome_message() == execution.outcome_message()


def test_a_running_execution_rebuilt_from_its_events_equals_the_live_one() -> None:
    execution, _ = _begin()
    rebuilt = rebuild(Execution, collect(execution))
    assert rebuilt.describe() == execution.describe()


def test_execution_event_topics_all_start_with_duecall(execution: Execution) -> None:
    execution.finish(AttemptResult(duration_ms=1.0, status_code=200), LATER)
    other, _ = _begin()
    other.finish(AttemptResult(duration_ms=1.0, status_code=500), LATER)
    events = [*collect(execution), *collect(other)]
    topics = {type(e).TOPIC for e in events}
    assert topics == {
        "duecall:Execution.Started",
        "duecall:Execution.Succeeded",
        "duecall:Execution.Failed",
    }


# --- Retry-After -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": "120"}, 120.0),
        ({"RETRY-AFTER": " 7 "}, 7.0),
        ({"Retry-After": "Fri, 14 Mar 2025 09:27:23 GMT"}, 30.0 - 0.25),  # relative to LATER
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": ""}, None),
        ({"Content-Type": "text/plain"}, None),
        (None, None),
    ],
)
def test_the_outcome_carries_the_retry_after_header_in_seconds(
    execution: Execution, headers: dict[str, str] | None, expected: float | None
) -> None:
    result = AttemptResult(duration_ms=3.0, status_code=503, headers=headers)
    outcome = execution.finish(result, LATER)
    assert outcome is not None
    assert outcome.retry_after_seconds == expected
    assert execution.outcome_message().retry_after_seconds == expected


def test_retry_after_is_read_from_the_recorded_headers_after_a_rebuild() -> None:
    execution, _ = _begin()
    execution.finish(
        AttemptResult(duration_ms=3.0, status_code=429, headers={"Retry-After": "9"}), LATER
    )
    events = collect(execution)
    failed = cast(Any, events[-1])
    assert failed.headers == {"Retry-After": "9"}
    rebuilt = rebuild(Execution, events)
    assert rebuilt.outcome_message().retry_after_seconds == 9.0
    assert rebuilt.outcome_message() == execution.outcome_message()


def test_a_failure_without_response_headers_has_no_retry_after(execution: Execution) -> None:
    outcome = execution.finish(AttemptResult(duration_ms=1.0, error_kind=ErrorKind.TIMEOUT), LATER)
    assert outcome is not None
    assert outcome.retry_after_seconds is None
