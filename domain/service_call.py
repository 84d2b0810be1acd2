"""The ServiceCall aggregate: one scheduled HTTP call and its lifecycle.

Public command methods check the rules and compute values; the private ``@event`` methods
only assign state (they run again on every replay). A duplicate or late message is a no-op:
the command returns ``None`` (or ``False``) and records nothing.

One module over 300 lines on purpose: the aggregate with all its events (its persisted schema)
and their rules, as eventsourcing's examples keep an aggregate.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidTransitionError
from domain.ids import execution_id_for
from domain.outcome import AttemptOutcome
from domain.redaction import redact_headers
from domain.request import RequestSpec
from domain.retry_policy import RetryPolicy, ScheduleReason, decide_retry
from domain.status import CANCELLABLE, PAUSABLE, TERMINAL, Status

__all__ = ["TERMINAL", "ServiceCall", "Status"]

BY_DUECALL = "duecall"  # who scheduled an attempt: duecall's own policy ...
BY_CLIENT = "client"  # ... or a client's command (resume, manual retry)


class ServiceCall(Aggregate):
    TOPIC = "duecall:ServiceCall"

    class Event(Aggregate.Event):
        TOPIC = "duecall:ServiceCall.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "duecall:ServiceCall.Created"

    class Submitted(Created):
        """A call accepted: its first attempt is due at ``due_at`` (no ``Scheduled`` event of
        its own; later attempts, resumes and manual retries each have one)."""

        TOPIC = "duecall:ServiceCall.Submitted"
        tenant_id: str
        name: str
        method: str
        url: str
        headers: dict[str, str]
        body: str | None
        timeout_seconds: float
        due_at: datetime
        tags: list[str]
        correlation_id: str | None
        idempotency_key: str | None
        retry_policy: dict[str, Any]
        follow_redirects: bool
        secret_headers: list[str]
        origin: str | None  # what produced the call: None (a client) or "schedule:<id>"
        # its responses are recorded sealed (a workflow step with secret outputs)
        seal_response: bool

    @event(Submitted)
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
        retry_policy: dict[str, Any],
        follow_redirects: bool,
        secret_headers: list[str],
        origin: str | None = None,
        seal_response: bool = False,  # recorded before it existed: False
    ) -> None:
        self.tenant_id = tenant_id
        self.origin = origin
        self.seal_response = seal_response
        self.name = name
        self.request = RequestSpec.restored(
            method, url, dict(headers), body, timeout_seconds, follow_redirects, secret_headers
        )
        self.due_at = due_at
        self.tags = list(tags)
        self.correlation_id = correlation_id
        self.idempotency_key = idempotency_key
        self.status = Status.SCHEDULED  # its first attempt, due at ``due_at``
        self.attempt = 1
        self.execution_id: UUID | None = None
        self.last_status_code: int | None = None
        self.last_error_kind: str | None = None
        self.finished_at: datetime | None = None
        self.retry_policy = RetryPolicy.from_dict(retry_policy)
        self.retry_window_start = due_at

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
        retry_policy: RetryPolicy | None = None,
        origin: str | None = None,
        seal_response: bool = False,
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
            follow_redirects=request.follow_redirects,
            secret_headers=list(request.secret_headers),
            due_at=due_at,
            tags=tags or [],
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
            retry_policy=(retry_policy or RetryPolicy()).as_dict(),
            origin=origin,
            seal_response=seal_response,
        )
        return call

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def is_due(self, attempt: int, now: datetime) -> bool:
        """Is ``attempt`` the scheduled one, and due?"""
        return self.status == Status.SCHEDULED and attempt == self.attempt and now >= self.due_at

    def start(self, attempt: int, now: datetime) -> UUID | None:
        """Start a due attempt; returns its execution id, or None if this is stale."""
        if not self.is_due(attempt, now):
            return None
        execution_id = execution_id_for(self.id, attempt)
        self._start(attempt=attempt, execution_id=execution_id, started_at=now)
        return execution_id

    def hold(self, attempt: int, until: datetime) -> bool:
        """Hold a due attempt without spending it (its host's circuit is open)."""
        if self.status != Status.SCHEDULED or attempt != self.attempt:
            return False
        self._schedule(attempt=attempt, due_at=until, reason=ScheduleReason.CIRCUIT_OPEN)
        return True

    def record_outcome(
        self, outcome: AttemptOutcome, now: datetime, random_fraction: float = 1.0
    ) -> bool:
        """Turn the running attempt's outcome into the call's: done, retry later, or failed."""
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
            return True
        decision = decide_retry(
            self.retry_policy,
            attempt=outcome.attempt,
            error_kind=outcome.error_kind,
            status_code=outcome.status_code,
            retry_after_seconds=outcome.retry_after_seconds,
            first_attempt_due=self.retry_window_start,
            now=outcome.finished_at(now),
            random_fraction=random_fraction,
        )
        self._attempt_failed(
            attempt=outcome.attempt,
            execution_id=outcome.execution_id,
            error_kind=outcome.error_kind,
            status_code=outcome.status_code,
            message=outcome.message,
            retryable=self.retry_policy.retries(outcome.error_kind, outcome.status_code),
        )
        if decision.retry and decision.due_at is not None:
            self._schedule(
                attempt=self.attempt + 1,
                due_at=decision.due_at,
                reason=decision.reason,
                delay_seconds=decision.delay_seconds,
            )
        else:
            self._fail(
                attempt=outcome.attempt,
                execution_id=outcome.execution_id,
                error_kind=outcome.error_kind,
                status_code=outcome.status_code,
                message=outcome.message,
                reason=decision.reason,
                finished_at=now,
            )
        return True

    def cancel(self, reason: str | None, now: datetime) -> None:
        """Cancel: no further attempt starts; a running one finishes but is not retried."""
        if self.status not in CANCELLABLE:
            raise InvalidTransitionError("cancel", self.status)
        self._cancel(reason=reason, cancelled_at=now)

    def pause(self, now: datetime) -> bool:
        """Pause a call that has not started; pausing a paused call changes nothing."""
        if self.status == Status.PAUSED:
            return False
        if self.status not in PAUSABLE:
            raise InvalidTransitionError("pause", self.status)
        self._pause(paused_at=now)
        return True

    def resume(self, now: datetime) -> bool:
        """Resume a paused call: due again at its due time, or now if that has passed."""
        if self.status in TERMINAL:
            raise InvalidTransitionError("resume", self.status)
        if self.status != Status.PAUSED:
            return False
        self._resume(resumed_at=now)
        due_at = max(self.due_at, now)
        self._schedule(
            attempt=self.attempt, due_at=due_at, reason=ScheduleReason.RESUMED,
            scheduled_by=BY_CLIENT,
        )
        return True

    def retry(self, now: datetime, due_at: datetime | None = None) -> None:
        """Manual retry of a failed call: a new attempt, same call, history kept."""
        if self.status != Status.FAILED:
            raise InvalidTransitionError("retry", self.status)
        due = max(due_at or now, now)
        self._retry_requested(attempt=self.attempt + 1, due_at=due)
        self._schedule(
            attempt=self.attempt + 1, due_at=due, reason=ScheduleReason.MANUAL,
            scheduled_by=BY_CLIENT,
        )

    class Scheduled(Event):
        TOPIC = "duecall:ServiceCall.Scheduled"
        class_version = 2
        attempt: int
        due_at: datetime
        reason: str
        delay_seconds: float | None
        scheduled_by: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Added ``scheduled_by``: "duecall" (its policy) or "client" (a resume, a manual
            retry); a v1 event's is implied by its reason."""
            by_client = state["reason"] in (ScheduleReason.MANUAL, ScheduleReason.RESUMED)
            state["scheduled_by"] = BY_CLIENT if by_client else BY_DUECALL

    @event(Scheduled)
    def _schedule(
        self,
        attempt: int,
        due_at: datetime,
        reason: str,
        delay_seconds: float | None = None,
        scheduled_by: str = BY_DUECALL,
    ) -> None:
        self.status = Status.SCHEDULED
        self.attempt = attempt
        self.due_at = due_at

    @event("AttemptFailed", topic="duecall:ServiceCall.AttemptFailed")
    def _attempt_failed(
        self,
        attempt: int,
        execution_id: str,
        error_kind: str | None,
        status_code: int | None,
        message: str | None,
        retryable: bool,
    ) -> None:
        self.last_status_code = status_code
        self.last_error_kind = error_kind

    @event("Cancelled", topic="duecall:ServiceCall.Cancelled")
    def _cancel(self, reason: str | None, cancelled_at: datetime) -> None:
        self.status = Status.CANCELLED
        self.finished_at = cancelled_at

    @event("Paused", topic="duecall:ServiceCall.Paused")
    def _pause(self, paused_at: datetime) -> None:
        self.status = Status.PAUSED

    @event("Resumed", topic="duecall:ServiceCall.Resumed")
    def _resume(self, resumed_at: datetime) -> None:
        pass  # a Scheduled event follows

    @event("RetryRequested", topic="duecall:ServiceCall.RetryRequested")
    def _retry_requested(self, attempt: int, due_at: datetime) -> None:
        self.retry_window_start = due_at
        self.finished_at = None

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

    def log_context(self) -> dict[str, str]:
        return {"tenant_id": self.tenant_id, "service_call_id": str(self.id)}

    def describe(self) -> dict[str, Any]:
        """The call's state as plain values, for the API and the CLI (secret header values
        redacted)."""
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
                "headers": redact_headers(self.request.headers, self.request.secret_headers),
                "body": self.request.body,
                "timeout_seconds": self.request.timeout_seconds,
                "follow_redirects": self.request.follow_redirects,
                "secret_headers": list(self.request.secret_headers),
            },
            "tags": self.tags,
            "correlation_id": self.correlation_id,
            "retry_policy": self.retry_policy.as_dict(),
            "last_status_code": self.last_status_code,
            "last_error_kind": self.last_error_kind,
            "created_at": self.created_on,
            "updated_at": self.modified_on,
            "finished_at": self.finished_at,
            "version": self.version,
        }
