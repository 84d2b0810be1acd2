"""A call's outcome sent back to its producer: a workflow step's carries its final attempt's
response (status, headers, body snippet) to the run; a schedule's fire's is unchanged."""

from datetime import UTC, datetime, timedelta
from uuid import UUID

from application.outbox import SCHEDULE, WORKFLOW, producer_outcome_message
from application.service_calls import follow_ups
from domain.execution import Execution
from domain.ids import execution_id_for
from domain.outcome import AttemptResult, ErrorKind
from domain.request import RequestSpec
from domain.retry_policy import RetryPolicy
from domain.service_call import ServiceCall, Status

RUN_ID = UUID("0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b")
CALL_ID = UUID("0190a5b2-7c3d-7e4f-8a1b-000000000001")
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
REQUEST = RequestSpec("POST", "https://x.example/token")


def _call(origin: str | None, max_attempts: int = 1) -> ServiceCall:
    return ServiceCall.submit(
        id=CALL_ID,
        tenant_id="acme",
        name="wf/auth",
        request=REQUEST,
        due_at=NOW,
        idempotency_key=f"wf:{RUN_ID}:auth",
        retry_policy=RetryPolicy(max_attempts=max_attempts),
        origin=origin,
    )


def _attempt(call: ServiceCall, result: AttemptResult) -> Execution:
    """The call's current attempt made with ``result``, its outcome recorded on the call."""
    call.start(call.attempt, NOW)
    execution = Execution.begin(
        id=execution_id_for(call.id, call.attempt),
        tenant_id=call.tenant_id,
        service_call_id=call.id,
        attempt=call.attempt,
        request=REQUEST,
        now=NOW,
    )
    outcome = execution.finish(result, NOW + timedelta(seconds=1))
    assert outcome is not None
    assert call.record_outcome(outcome, NOW + timedelta(seconds=1), 0.0)
    return execution


def test_a_workflow_step_outcome_goes_to_its_run_with_the_final_response() -> None:
    call = _call(f"workflow:{RUN_ID}")
    body = '{"token": "abc"}'
    result = AttemptResult(12.0, 201, {"Content-Type": "application/json"}, body)
    execution = _attempt(call, result)
    message = producer_outcome_message(call, execution)
    assert message is not None
    assert (message.kind, message.service_call_id, message.tenant_id) == (WORKFLOW, RUN_ID, "acme")
    assert message.payload == {"outcome": {
        "call_id": str(CALL_ID), "status": "succeeded", "status_code": 201,
        "headers": {"Content-Type": "application/json"}, "body": body, "error_kind": None,
    }}


def test_a_failed_step_call_carries_its_last_attempts_response() -> None:
    call = _call(f"workflow:{RUN_ID}", max_attempts=2)
    _attempt(call, AttemptResult(5.0, 503, {}, "busy"))
    call.start(2, call.due_at)  # the retry
    last = _attempt(call, AttemptResult(5.0, 404, {"X-A": "1"}, "nope"))
    assert call.status is Status.FAILED
    message = producer_outcome_message(call, last)
    assert message is not None
    outcome = message.payload["outcome"]
    assert (outcome["status"], outcome["status_code"], outcome["body"]) == ("failed", 404, "nope")
    assert outcome["headers"] == {"X-A": "1"}
    assert outcome["error_kind"] == ErrorKind.HTTP_ERROR


def test_without_the_final_attempt_only_the_status_goes() -> None:
    call = _call(f"workflow:{RUN_ID}", max_attempts=2)
    earlier = _attempt(call, AttemptResult(5.0, 503, {}, "busy"))  # a retry is scheduled
    assert producer_outcome_message(call, earlier) is None  # not over
    call.cancel("by hand", NOW)
    message = producer_outcome_message(call, earlier)  # an earlier attempt's: not used
    assert message is not None
    assert message.payload["outcome"] == {
        "call_id": str(CALL_ID), "status": "cancelled", "status_code": 503, "headers": {},
        "body": None, "error_kind": ErrorKind.HTTP_ERROR,
    }


def test_a_schedules_fire_still_sends_only_its_status() -> None:
    schedule_id = UUID("0190a5b2-7c3d-7e4f-8a1b-000000000002")
    call = _call(f"schedule:{schedule_id}")
    execution = _attempt(call, AttemptResult(5.0, 200, {}, "ok"))
    message = producer_outcome_message(call, execution)
    assert message is not None
    assert (message.kind, message.service_call_id) == (SCHEDULE, schedule_id)
    assert message.payload == {"outcome": {"call_id": str(CALL_ID), "status": "succeeded"}}


def test_follow_ups_find_the_final_attempt_among_those_recorded_with_it() -> None:
    call = _call(f"workflow:{RUN_ID}")
    execution = _attempt(call, AttemptResult(5.0, 200, {}, '{"id": 7}'))
    [message] = follow_ups([call], {}, {execution.id: execution})
    assert message.payload["outcome"]["body"] == '{"id": 7}'
    assert producer_outcome_message(_call(None)) is None  # a client's call: no producer
