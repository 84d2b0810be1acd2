"""The Execution aggregate: one HTTP attempt of one service call.

Started ─► Succeeded (2xx)  └► Failed (non-2xx, timeout, network, rejected, lost).
Exactly one terminal event: finishing an execution twice is a no-op.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.outcome import AttemptOutcome, AttemptResult
from domain.redaction import REDACTED, is_sealed, redact_headers
from domain.request import RequestSpec
from domain.retry_after import parse_retry_after


class Execution(Aggregate):
    TOPIC = "duecall:Execution"

    class Event(Aggregate.Event):
        TOPIC = "duecall:Execution.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "duecall:Execution.Created"

    @event("Started", topic="duecall:Execution.Started")
    def __init__(
        self,
        id: UUID,
        tenant_id: str,
        service_call_id: UUID,
        attempt: int,
        method: str,
        url: str,
        headers: dict[str, str],
        timeout_seconds: float,
        started_at: datetime,
    ) -> None:
        self.tenant_id = tenant_id
        self.service_call_id = service_call_id
        self.attempt = attempt
        self.method = method
        self.url = url
        self.headers = dict(headers)
        self.timeout_seconds = timeout_seconds
        self.started_at = started_at
        self.outcome: str | None = None
        self.status_code: int | None = None
        self.error_kind: str | None = None
        self.message: str | None = None
        self.response_headers: dict[str, str] | None = None
        self.body_snippet: str | None = None
        self.finished_at: datetime | None = None
        self.duration_ms: float | None = None

    @classmethod
    def begin(
        cls,
        *,
        id: UUID,
        tenant_id: str,
        service_call_id: UUID,
        attempt: int,
        request: RequestSpec,
        now: datetime,
    ) -> "Execution":
        return cls(
            id=id,
            tenant_id=tenant_id,
            service_call_id=service_call_id,
            attempt=attempt,
            method=request.method,
            url=request.url,
            headers=request.headers,
            timeout_seconds=request.timeout_seconds,
            started_at=now,
        )

    @property
    def is_finished(self) -> bool:
        return self.outcome is not None

    def finish(self, result: AttemptResult, now: datetime) -> AttemptOutcome | None:
        """Record the attempt's result; None if it was already finished."""
        if self.is_finished:
            return None
        result = result.classified()
        if result.succeeded:
            self._succeed(
                status_code=result.status_code,
                headers=result.headers or {},
                body_snippet=result.body_snippet,
                finished_at=now,
                duration_ms=result.duration_ms,
            )
        else:
            self._fail(
                error_kind=str(result.error_kind),
                status_code=result.status_code,
                message=result.message,
                headers=result.headers,
                body_snippet=result.body_snippet,
                finished_at=now,
                duration_ms=result.duration_ms,
            )
        return self.outcome_message()

    def outcome_message(self) -> AttemptOutcome:
        assert self.duration_ms is not None, "execution has not finished"
        assert self.finished_at is not None
        headers = {k.lower(): v for k, v in (self.response_headers or {}).items()}
        return AttemptOutcome(
            execution_id=str(self.id),
            attempt=self.attempt,
            succeeded=self.outcome == "succeeded",
            duration_ms=self.duration_ms,
            status_code=self.status_code,
            error_kind=self.error_kind,
            message=self.message,
            retry_after_seconds=parse_retry_after(headers.get("retry-after"), self.finished_at),
            finished_at_epoch=self.finished_at.timestamp(),
        )

    @event("Succeeded", topic="duecall:Execution.Succeeded")
    def _succeed(
        self,
        status_code: int | None,
        headers: dict[str, str],
        body_snippet: str | None,
        finished_at: datetime,
        duration_ms: float,
    ) -> None:
        self.outcome = "succeeded"
        self.status_code = status_code
        self.response_headers = headers
        self.body_snippet = body_snippet
        self.finished_at = finished_at
        self.duration_ms = duration_ms

    @event("Failed", topic="duecall:Execution.Failed")
    def _fail(
        self,
        error_kind: str,
        status_code: int | None,
        message: str | None,
        headers: dict[str, str] | None,
        body_snippet: str | None,
        finished_at: datetime,
        duration_ms: float,
    ) -> None:
        self.outcome = "failed"
        self.error_kind = error_kind
        self.status_code = status_code
        self.message = message
        self.response_headers = headers
        self.body_snippet = body_snippet
        self.finished_at = finished_at
        self.duration_ms = duration_ms

    def log_context(self) -> dict[str, str]:
        return {
            "tenant_id": self.tenant_id,
            "service_call_id": str(self.service_call_id),
            "execution_id": str(self.id),
        }

    def describe(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "service_call_id": str(self.service_call_id),
            "attempt": self.attempt,
            # secret values were recorded sealed; credential-bearing names are redacted too
            "request": {
                "method": self.method,
                "url": self.url,
                "headers": redact_headers(self.headers),
            },
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_ms": self.duration_ms,
            "outcome": self.outcome or "running",
            "status_code": self.status_code,
            "error_kind": self.error_kind,
            "message": self.message,
            "response_headers": (
                None if self.response_headers is None else redact_headers(self.response_headers)
            ),
            # recorded sealed for a workflow step with secret outputs
            "body_snippet": REDACTED if is_sealed(self.body_snippet) else self.body_snippet,
        }
