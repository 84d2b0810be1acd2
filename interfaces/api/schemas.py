"""Request and response models of the HTTP API, named by role."""

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, field_validator

from domain.headers import MAX_HEADERS
from domain.request import (
    DEFAULT_TIMEOUT_SECONDS,
    MAX_SECRET_HEADER_NAME_LENGTH,
    MAX_SECRET_HEADERS,
    MAX_TIMEOUT_SECONDS,
    MAX_URL_LENGTH,
    MIN_TIMEOUT_SECONDS,
    RequestSpec,
)
from domain.retry_policy import DEFAULT_RETRY_ON
from domain.retry_policy import MAX_DELAY_SECONDS as MAX_RETRY_DELAY_SECONDS
from interfaces.api import patterns
from interfaces.api.fields import AwareDateTime, Integer, JsonBody, Number, SafeText, Storable

MAX_DELAY_SECONDS = 366 * 24 * 3600
MAX_TAGS = 50
MAX_TAG_LENGTH = 200  # the read model indexes tags: an unbounded one broke its index
Tag = Annotated[str, Field(max_length=MAX_TAG_LENGTH), Storable]
IdText = Annotated[str, Field(min_length=1, max_length=200), Storable]
EARLIEST_DUE = datetime(2000, 1, 1, tzinfo=UTC)  # a past due time means "now"

RetryOn = Annotated[str, Field(pattern=patterns.RETRY_ON)]
# Checked by the domain (its 422 names the field); the schema says the same.
HeaderName = Annotated[str, Field(max_length=MAX_SECRET_HEADER_NAME_LENGTH,
                                  pattern=patterns.HEADER_NAME)]
_HEADERS_SCHEMA: dict[str, Any] = {
    "propertyNames": {"pattern": patterns.HEADER_NAME,
                      "not": {"pattern": patterns.RESERVED_HEADER}},
    "additionalProperties": {"type": "string", "pattern": patterns.HEADER_VALUE},
}


class RequestCreate(BaseModel):
    method: SafeText = Field(
        default="POST", examples=["POST"], json_schema_extra={"pattern": patterns.METHOD}
    )
    url: SafeText = Field(
        max_length=MAX_URL_LENGTH,
        examples=["https://example.com/webhook"],
        json_schema_extra={"pattern": patterns.URL},
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_HEADERS,
        json_schema_extra=_HEADERS_SCHEMA,
        description="Names are RFC 9110 tokens; values tabs and visible Latin-1 characters; "
        "at most 32 KiB in all unless the deployment says otherwise (larger → 413). Host, "
        "framing headers, Idempotency-Key, traceparent and Duecall-* are duecall's (→ 422).",
    )
    body: JsonBody = Field(
        default=None,
        description="A string is sent as is; any other JSON value is sent JSON-encoded "
        "(with Content-Type: application/json unless a Content-Type header is given). "
        "At most 1 MiB as sent, unless the deployment says otherwise (larger → 413). "
        "No NUL characters or lone surrogates in any string; no NaN or Infinity.",
    )
    timeout_seconds: Number = Field(
        default=DEFAULT_TIMEOUT_SECONDS, ge=MIN_TIMEOUT_SECONDS, le=MAX_TIMEOUT_SECONDS
    )
    follow_redirects: StrictBool = Field(
        default=False,
        description="Follow up to 5 redirects (each hop passes the outbound guard); "
        "false → a 3xx answer is the attempt's result.",
    )
    secret_headers: list[HeaderName] = Field(
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
        return headers, json.dumps(self.body, separators=(",", ":"), allow_nan=False)

    def spec(self) -> RequestSpec:
        """The request as it will be sent (raises ``InvalidRequestError`` naming the field)."""
        headers, body = self.encoded()
        return RequestSpec(
            self.method, self.url, headers, body, self.timeout_seconds, self.follow_redirects,
            secret_headers=tuple(self.secret_headers),
        )


class ServiceCallCreate(BaseModel):
    # the schema says what _one_due_time refuses: both due_at and delay_seconds (not null)
    model_config = ConfigDict(json_schema_extra={"not": {
        "required": ["due_at", "delay_seconds"],
        "properties": {"due_at": {"not": {"type": "null"}},
                       "delay_seconds": {"not": {"type": "null"}}},
    }})

    name: SafeText = Field(default="default", min_length=1, max_length=200)
    request: RequestCreate
    due_at: AwareDateTime | None = Field(
        default=None, description="When to make the call (RFC 3339 with an offset)."
    )
    delay_seconds: Number | None = Field(default=None, ge=0, le=MAX_DELAY_SECONDS)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    correlation_id: Annotated[str, Field(max_length=200), Storable] | None = None
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


class RetryPolicyCreate(BaseModel):
    max_attempts: Integer = Field(default=5, ge=1, le=50)
    initial_backoff_seconds: Number = Field(default=1.0, ge=0, le=86_400)
    max_backoff_seconds: Number = Field(default=600.0, ge=0, le=7 * 86_400)
    multiplier: Number = Field(default=2.0, ge=1.0, le=10.0)
    jitter: Literal["full", "none"] = "full"
    max_retry_duration_seconds: Number | None = Field(
        default=None, gt=0, le=MAX_RETRY_DELAY_SECONDS
    )
    retry_on: list[RetryOn] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_ON),
        max_length=50,
        description="Outcomes that retry: timeout, network, lost, rejected, circuit_open, a "
        "status code (503) or a class (5xx). Other failures fail at once.",
    )


class CancelRequest(BaseModel):
    reason: Annotated[str, Field(max_length=500), Storable] | None = None


class RetryRequest(BaseModel):
    due_at: AwareDateTime | None = None


ServiceCallCreate.model_rebuild()


class ServiceCallBatchItem(ServiceCallCreate):
    idempotency_key: IdText | None = None


class ServiceCallBatchCreate(BaseModel):
    calls: list[ServiceCallBatchItem] = Field(min_length=1, max_length=1000)


class ServiceCallBatchResult(BaseModel):
    id: str
    status: str
    due_at: datetime
    created: bool


class ServiceCallBatchResults(BaseModel):
    items: list[ServiceCallBatchResult]
