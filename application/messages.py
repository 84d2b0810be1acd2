"""Building and reading the outbox messages exchanged by the modules."""

from dataclasses import asdict
from datetime import datetime
from uuid import UUID

from application.outbox import EXECUTE, OUTCOME, START, OutboxMessage
from domain.outcome import AttemptOutcome
from domain.request import RequestSpec
from domain.service_call import ServiceCall


def start_message(call: ServiceCall) -> OutboxMessage:
    """The timer message for the call's scheduled attempt."""
    return OutboxMessage(
        START,
        call.tenant_id,
        call.id,
        call.attempt,
        available_at=call.due_at,
        due_at=call.due_at,
        host=call.request.host,
    )


def execute_message(
    tenant_id: str,
    call_id: UUID,
    attempt: int,
    execution_id: UUID,
    request: RequestSpec,
    now: datetime,
    grace_seconds: float,
) -> OutboxMessage:
    return OutboxMessage(
        EXECUTE,
        tenant_id,
        call_id,
        attempt,
        available_at=now,
        host=request.host,
        lease_seconds=request.timeout_seconds + grace_seconds,
        payload={"execution_id": str(execution_id), "request": request.as_dict()},
    )


def request_of(message: OutboxMessage) -> RequestSpec:
    return RequestSpec.restored(**message.payload["request"])


def execution_id_of(message: OutboxMessage) -> UUID:
    return UUID(message.payload["execution_id"])


def outcome_message(
    execute: OutboxMessage, outcome: AttemptOutcome, now: datetime
) -> OutboxMessage:
    """Tell orchestration how the attempt asked for by ``execute`` ended."""
    return OutboxMessage(
        OUTCOME,
        execute.tenant_id,
        execute.service_call_id,
        outcome.attempt,
        available_at=now,
        host=execute.host,
        payload=asdict(outcome),
    )


def outcome_of(message: OutboxMessage) -> AttemptOutcome:
    return AttemptOutcome(**message.payload)
