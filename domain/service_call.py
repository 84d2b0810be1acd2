"""The ServiceCall aggregate: one scheduled HTTP call and its lifecycle.

Public command methods check the rules and compute values; the private ``@event`` methods
only assign state (they run again on every replay). A duplicate or late message is a no-op:
the command returns ``None`` (or ``False``) and records nothing.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.ids import execution_id_for
from domain.outcome import AttemptOutcome
from domain.request import RequestSpec


class Status(StrEnum):
    SUBMITTED = "submitted"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})


class ServiceCall(Aggregate):
    TOPIC = "duecall:ServiceCall"

    class Event(Aggregate.Event):
        TOPIC = "duecall:ServiceCall.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "duecall:ServiceCall.Created"

    @event("Submitted", topic="duecall:ServiceCall.Submitted")
    def __init__(
        self,
        id: UUID,
        tenant_id: str,
        name: str,
        method: str,
        url: str,
        headers: dict[str, str],
        body: str | None,
        timeout_seconds: float,
        due_at: datetime,
        tags: list[str],
        correlation_id: str | None,
        idempotency_key: str | None,
    ) -> None:
        self.tenant_id = tenant_id
        self.name = name
        self.request = RequestSpec(method, url, dict(headers), body, timeout_seconds)
        self.due_at = due_at
        self.tags = list(tags)
        self.correlation_id = correlation_id
        self.idempotency_key = idempotency_key
        self.status = Status.SUBMITTED
        self.attempt = 0
        self.execution_id: UUID | None = None
        self.last_status_code: int | None = None
        self.last_error_kind: str | None = None
        self.finished_at: datetime | None = None

    @classmethod
    def submit(
        cls,
        *,
        id: UUID,
        tenant_id: str,
        name: str,
        request: RequestSpec,
        due_at: datetime,
        tags: list[str] | None = None,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> "ServiceCall":
        call = cls(
            id=id,
            tenant_id=tenant_id,
            name=name,
            method=request.method,
            url=request.url,
            headers=request.headers,
            body=request.body,
            timeout_seconds=request.timeout_seconds,
            due_at=due_at,
            tags=tags or [],
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
        )
        call._schedule(attempt=1, due_at=due_at, reason="submitted")
        return call

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def start(self, attempt: int, now: datetime) -> UUID | None:
        """Start a due attempt; returns its execution id, or None if this is stale."""
        if self.status != Status.SCHEDULED or attempt != self.attempt or now < self.due_at:
            return None
        execution_id = execution_id_for(self.id, attempt)
        self._start(attempt=attempt, execution_id=execution_id, started_at=now)
        return execution_id

    def record_outcome(self, outcome: AttemptOutcome, now: datetime) -> bool:
        """Turn the outcome of the running attempt into the call's outcome."""
        if (
            self.status != Status.RUNNING
            or outcome.attempt != self.attempt
            or outcome.execution_id != str(self.execution_id)
        ):
            return False
        if outcome.succeeded:
            self._succeed(
                attempt=outcome.attempt,
                execution_id=outcome.execution_id,
                status_code=outcome.status_code,
                duration_ms=outcome.duration_ms,
                finished_at=now,
            )
        else:
            self._fail(
                attempt=outcome.attempt,
                execution_id=outcome.execution_id,
                error_kind=outcome.error_kind,
                status_code=outcome.status_code,
                message=outcome.message,
                reason="not_retryable",
                finished_at=now,
            )
        return True

    @event("Scheduled", topic="duecall:ServiceCall.Scheduled")
    def _schedule(self, attempt: int, due_at: datetime, reason: str) -> None:
        self.status = Status.SCHEDULED
        self.attempt = attempt
        self.due_at = due_at

    @event("Started", topic="duecall:ServiceCall.Started")
    def _start(self, attempt: int, execution_id: UUID, started_at: datetime) -> None:
        self.status = Status.RUNNING
        self.execution_id = execution_id

    @event("Succeeded", topic="duecall:ServiceCall.Succeeded")
    def _succeed(
        self,
        attempt: int,
        execution_id: str,
        status_code: int | None,
        duration_ms: float,
        finished_at: datetime,
    ) -> None:
        self.status = Status.SUCCEEDED
        self.last_status_code = status_code
        self.last_error_kind = None
        self.finished_at = finished_at

    @event("Failed", topic="duecall:ServiceCall.Failed")
    def _fail(
        self,
        attempt: int,
        execution_id: str,
        error_kind: str | None,
        status_code: int | None,
        message: str | None,
        reason: str,
        finished_at: datetime,
    ) -> None:
        self.status = Status.FAILED
        self.last_status_code = status_code
        self.last_error_kind = error_kind
        self.finished_at = finished_at

    def describe(self) -> dict[str, Any]:
        """The call's state as plain values, for the API and the CLI."""
        return {
            "id": str(self.id),
            "tenant_id": self.tenant_id,
            "name": self.name,
            "status": self.status.value,
            "attempt": self.attempt,
            "due_at": self.due_at,
            "request": {
                "method": self.request.method,
                "url": self.request.url,
                "headers": self.request.headers,
                "body": self.request.body,
                "timeout_seconds": self.request.timeout_seconds,
            },
            "tags": self.tags,
            "correlation_id": self.correlation_id,
            "last_status_code": self.last_status_code,
            "last_error_kind": self.last_error_kind,
            "created_at": self.created_on,
            "updated_at": self.modified_on,
            "finished_at": self.finished_at,
            "version": self.version,
        }
