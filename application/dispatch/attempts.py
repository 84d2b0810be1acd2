"""Attempts: the HTTP attempts a worker makes, one Execution aggregate each.

``begin`` turns claimed ``execute`` messages into attempts to make, ``withdraw`` drops ones
not to be made, ``finish`` records their outcomes through ``ServiceCalls.record_outcomes``,
which decides what follows for each call in the same transaction: ServiceCalls is the one
writer of every event (calls, executions, circuits).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError

from application.clock import utcnow
from application.loading import load_many
from application.messages import execution_id_of, request_of
from application.outbox import OutboxMessage
from application.recording import record
from application.service_calls import ServiceCalls, ending_attempts
from domain.execution import Execution
from domain.outcome import AttemptResult, ErrorKind
from domain.request import RequestSpec

log = structlog.get_logger(__name__)


@dataclass
class Attempt:
    """A started execution, with the message that asked for it and the request to make."""

    message: OutboxMessage
    execution: Execution
    request: RequestSpec

    @property
    def idempotency_key(self) -> str:
        return f"{self.message.service_call_id}:{self.message.attempt}"


class Attempts:
    def __init__(self, calls: ServiceCalls, max_deliveries: int = 3) -> None:
        self._calls = calls
        self.max_deliveries = max_deliveries

    def begin(self, messages: Sequence[OutboxMessage]) -> list[Attempt]:
        """The attempts to make for these messages.

        As with Temporal's ActivityTaskStarted, an execution's Started event is recorded
        together with its outcome (one transaction per batch instead of two); meanwhile the
        leased ``execute`` message is the durable record of the attempt in flight. A message
        claimed again after its lease ended means a worker died mid-attempt: the same attempt
        is made again (same Idempotency-Key). After ``max_deliveries`` claims, the watchdog
        gives up and fails it as ``lost``; the policy retries.
        """
        now = utcnow()
        attempts: list[Attempt] = []
        finished: list[int] = []
        lost: list[tuple[Attempt, AttemptResult]] = []
        # Only a message delivered before can have a recorded execution (first deliveries,
        # nearly all of them, need no read).
        recorded = load_many(self._calls, (execution_id_of(m) for m in messages if m.claims > 1))
        for message in messages:
            execution = recorded.get(execution_id_of(message))
            if execution is not None and execution.is_finished:
                finished.append(message.id or 0)  # a late duplicate: its outcome is recorded
                continue
            began = max(now, message.due_at) if message.due_at else now  # an early start: due
            attempt = Attempt(message, execution or _started(message, began), request_of(message))
            if message.claims > self.max_deliveries:
                lost.append((attempt, _lost(message)))
            else:
                attempts.append(attempt)
        if finished:
            record(self._calls, [], ending_attempts(finished))
        if lost:
            self.finish(lost)
        return attempts

    def withdraw(self, attempts: Sequence[Attempt]) -> None:
        """Attempts not to be made after all (their call was cancelled between the timer's
        early start and the due time): their messages go, nothing is recorded for them."""
        consume = [a.message.id for a in attempts if a.message.id]
        record(self._calls, [], ending_attempts(consume))

    def finish(self, results: Sequence[tuple[Attempt, AttemptResult]]) -> None:
        """Record each attempt's outcome, consuming its message, with what follows for its call
        (``ServiceCalls.record_outcomes``)."""
        now = utcnow()
        reported = []
        for attempt, result in results:
            outcome = attempt.execution.finish(result, now)
            if outcome is None:
                log.info("duplicate_outcome_ignored", execution_id=str(attempt.execution.id))
                continue
            reported.append((attempt.message, outcome))
        consume = [a.message.id for a, _ in results if a.message.id]
        executions = [a.execution for a, _ in results]
        self._calls.record_outcomes(executions, reported, consume, now)

    def reload(self, attempt: Attempt) -> Attempt:
        """The attempt with its execution as now recorded (after a write conflict)."""
        execution = self._find(attempt.execution.id) or _started(
            attempt.message, attempt.execution.started_at
        )
        return Attempt(attempt.message, execution, attempt.request)

    def _find(self, execution_id: UUID) -> Execution | None:
        try:
            execution: Execution = self._calls.repository.get(execution_id)
        except AggregateNotFoundError:
            return None
        return execution


def _lost(message: OutboxMessage) -> AttemptResult:
    return AttemptResult(
        duration_ms=0.0,
        error_kind=ErrorKind.LOST,
        message=f"no outcome after {message.claims - 1} deliveries (workers died or hung)",
    )


def _started(message: OutboxMessage, now: datetime) -> Execution:
    return Execution.begin(
        id=execution_id_of(message),
        tenant_id=message.tenant_id,
        service_call_id=message.service_call_id,
        attempt=message.attempt,
        request=request_of(message),
        now=now,
    )
