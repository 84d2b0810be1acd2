"""Commands: what a client asks duecall to do (imperative names)."""

from dataclasses import dataclass, field
from datetime import datetime

from domain.request import RequestSpec
from domain.retry_policy import RetryPolicy


@dataclass(frozen=True)
class SubmitServiceCall:
    tenant_id: str
    name: str
    request: RequestSpec
    due_at: datetime
    tags: list[str] = field(default_factory=list)
    correlation_id: str | None = None
    idempotency_key: str | None = None
    request_hash: str = ""
    retry_policy: RetryPolicy | None = None
    trace_parent: str | None = None  # the submitting request's (tracing on): see tracing.py
    origin: str | None = None  # a schedule's fire: "schedule:<id>" (never set by a client)
