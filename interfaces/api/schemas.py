"""Request and response models of the HTTP API, named by role."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
)

from domain.request import (
    DEFAULT_TIMEOUT_SECONDS,
    MAX_HEADERS,
    MAX_SECRET_HEADERS,
    MAX_TIMEOUT_SECONDS,
    MAX_URL_LENGTH,
    MIN_TIMEOUT_SECONDS,
    RequestSpec,
)
from domain.retry_policy import DEFAULT_RETRY_ON

MAX_DELAY_SECONDS = 366 * 24 * 3600
EARLIEST_DUE = datetime(2000, 1, 1, tzinfo=UTC)  # a past due time means "now"


class RequestCreate(BaseModel):
    method: str = Field(default="POST", examples=["POST"])
    url: str = Field(max_length=MAX_URL_LENGTH, examples=["https://example.com/webhook"])
    headers: dict[str, str] = Field(default_factory=dict, max_length=MAX_HEADERS)
    body: JsonValue = Field(
        default=None,
        description="A string is sent as is; any other JSON value is sent JSON-encoded "
        "(with Content-Type: application/json unless a Content-Type header is given). "
        "At most 1 MiB as sent, unless the deployment says otherwise (larger → 413).",
    )
    timeout_seconds: float = Field(
        default=DEFAULT_TIMEOUT_SECONDS, ge=MIN_TIMEOUT_SECONDS, le=MAX_TIMEOUT_SECONDS
    )
    follow_redirects: bool = Field(
        default=False,
        description="Follow up to 5 redirects (each hop passes the outbound guard); "
        "false → a 3xx answer is the attempt's result.",
    )
    secret_headers: list[str] = Field(
        default_factory=list,
        max_length=MAX_SECRET_HEADERS,
        examples=[["X-Custom-Token"]],
        description="More header names whose values are secret (any case), besides "
        "Authorization, Proxy-Authorization, Cookie, Set-Cookie and X-Api-Key: their values "
        "are stored encrypted, shown as [REDACTED], and sent in clear only to the target.",
    )

    def encoded(self) -> tuple[dict[str, str], str | None]:
        """Headers and body as they will be sent."""
        if self.body is None or isinstance(self.body, str):
            return dict(self.headers), self.body
        headers = dict(self.headers)
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        return headers, json.dumps(self.body, separators=(",", ":"))

    def spec(self) -> RequestSpec:
        """The request as it will be sent (raises ``InvalidRequestError`` naming the field)."""
        headers, body = self.encoded()
        return RequestSpec(
            self.method, self.url, headers, body, self.timeout_seconds, self.follow_redirects,
            secret_headers=tuple(self.secret_headers),
        )


class ServiceCallCreate(BaseModel):
    name: str = Field(default="default", min_length=1, max_length=200)
    request: RequestCreate
    due_at: AwareDatetime | None = Field(
        default=None, description="When to make the call (RFC 3339 with an offset)."
    )
    delay_seconds: float | None = Field(default=None, ge=0, le=MAX_DELAY_SECONDS)
    tags: list[str] = Field(default_factory=list, max_length=50)
    correlation_id: str | None = Field(default=None, max_length=200)
    retry_policy: "RetryPolicyCreate | None" = None

    @field_validator("delay_seconds")
    @classmethod
    def _one_due_time(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("due_at") is not None:
            raise ValueError("give due_at or delay_seconds, not both")
        return value

    @field_validator("due_at")
    @classmethod
    def _due_in_range(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        now = datetime.now(UTC)
        if not EARLIEST_DUE <= value <= now + timedelta(seconds=MAX_DELAY_SECONDS):
            raise ValueError(
                f"must be after {EARLIEST_DUE:%Y-%m-%d} and at most 366 days from now"
            )
        return value


class RequestPublic(BaseModel):
    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    timeout_seconds: float
    follow_redirects: bool = False
    secret_headers: list[str] = Field(default_factory=list)


class ServiceCallPublic(BaseModel):
    id: str
    tenant_id: str
    name: str
    status: str
    attempt: int
    due_at: datetime
    request: RequestPublic
    tags: list[str]
    correlation_id: str | None
    retry_policy: dict[str, Any]
    last_status_code: int | None
    last_error_kind: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    version: int


class ExecutionRequestPublic(BaseModel):
    method: str
    url: str
    headers: dict[str, str]


class ExecutionPublic(BaseModel):
    id: str
    service_call_id: str
    attempt: int
    request: ExecutionRequestPublic
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    outcome: str
    status_code: int | None
    error_kind: str | None
    message: str | None
    response_headers: dict[str, str] | None
    body_snippet: str | None


class ExecutionList(BaseModel):
    items: list[ExecutionPublic]


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


class RetryPolicyCreate(BaseModel):
    max_attempts: int = Field(default=5, ge=1, le=50)
    initial_backoff_seconds: float = Field(default=1.0, ge=0, le=86_400)
    max_backoff_seconds: float = Field(default=600.0, ge=0, le=7 * 86_400)
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0)
    jitter: Literal["full", "none"] = "full"
    max_retry_duration_seconds: float | None = Field(default=None, gt=0)
    retry_on: list[str] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_ON),
        description="Outcomes that retry: timeout, network, lost, a status code (503) or a "
        "class (5xx). Other failures fail at once.",
    )


class CancelRequest(BaseModel):
    reason: str | None = Field(default=None, max_length=500)


class RetryRequest(BaseModel):
    due_at: AwareDatetime | None = None


ServiceCallCreate.model_rebuild()


class ServiceCallBatchItem(ServiceCallCreate):
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class ServiceCallBatchCreate(BaseModel):
    calls: list[ServiceCallBatchItem] = Field(min_length=1, max_length=1000)


class ServiceCallBatchResult(BaseModel):
    id: str
    status: str
    due_at: datetime
    created: bool


class ServiceCallBatchResults(BaseModel):
    items: list[ServiceCallBatchResult]
