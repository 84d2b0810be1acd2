"""Building and reading the outbox messages exchanged by the modules."""

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from application.outbox import EXECUTE, START, OutboxMessage
from domain.request import RequestSpec
from domain.service_call import ServiceCall

# The W3C traceparent of the API request that submitted the call (tracing on only): carried
# from message to message of the call, so that each attempt's span continues that trace.
TRACE_PARENT = "trace_parent"
STARTED_VERSION = "started_version"  # on an early start's execute message: see leased_here


def start_message(call: ServiceCall, trace_parent: str | None = None) -> OutboxMessage:
    """The timer message for the call's scheduled attempt."""
    return OutboxMessage(
        START,
        call.tenant_id,
        call.id,
        call.attempt,
        available_at=call.due_at,
        due_at=call.due_at,
        host=call.request.host,
        payload=_traced({}, trace_parent),
    )


def execute_message(
    tenant_id: str,
    call_id: UUID,
    attempt: int,
    execution_id: UUID,
    request: RequestSpec,
    now: datetime,
    grace_seconds: float,
    trace_parent: str | None = None,
    correlation_id: str | None = None,
) -> OutboxMessage:
    payload: dict[str, Any] = {"execution_id": str(execution_id), "request": request.as_dict()}
    if correlation_id is not None:
        payload["correlation_id"] = correlation_id
    return OutboxMessage(
        EXECUTE,
        tenant_id,
        call_id,
        attempt,
        available_at=now,
        host=request.host,
        lease_seconds=request.timeout_seconds + grace_seconds,
        payload=_traced(payload, trace_parent),
    )


def leased_here(
    execute: OutboxMessage, start: OutboxMessage, started_version: int
) -> OutboxMessage:
    """``execute`` as a message this worker already holds (a timer's early start, handed to its
    own execution loop): leased from its due time for the attempt's timeout and grace, claimed
    once, with the negated id of the ``start`` message it replaces (deleted in the same
    transaction). Negated, not reused: a timer still holding that ``start`` message (its lease
    ran out and another timer started the call) consumes it by id as stale, and must not
    delete this one (the call would be left started, never made).

    Its lease is what keeps it durable: if this worker dies, another one claims it when the
    lease ends and makes the attempt then (late, never lost); a worker stopping hands it back
    (available at its due time). ``started_version``: the call's version once started (an
    event after it, a cancel, means the attempt is not to be made)."""
    assert start.id is not None
    assert execute.lease_seconds is not None
    due = execute.available_at
    return replace(
        execute,
        id=-start.id,  # unique too: the sequence only hands out positive ids
        claims=1,
        due_at=due,
        payload={**execute.payload, STARTED_VERSION: started_version},
        available_at=due + timedelta(seconds=execute.lease_seconds),
    )


def request_of(message: OutboxMessage) -> RequestSpec:
    return RequestSpec.restored(**message.payload["request"])


def execution_id_of(message: OutboxMessage) -> UUID:
    return UUID(message.payload["execution_id"])


def correlation_id_of(message: OutboxMessage) -> str | None:
    """The call's correlation id, on an ``execute`` message."""
    value: str | None = message.payload.get("correlation_id")
    return value


def started_version_of(message: OutboxMessage) -> int | None:
    value: int | None = message.payload.get(STARTED_VERSION)
    return value


def trace_parent_of(message: OutboxMessage) -> str | None:
    value: str | None = message.payload.get(TRACE_PARENT)
    return value


def _traced(payload: dict[str, Any], trace_parent: str | None) -> dict[str, Any]:
    if trace_parent is not None:
        payload[TRACE_PARENT] = trace_parent
    return payload

