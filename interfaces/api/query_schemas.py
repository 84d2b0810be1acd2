"""Response models of the read-model queries: pages, entries, and how fresh they are."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field


class ReadModelMeta(BaseModel):
    """How fresh the answer is: the read model reflects the log up to ``position``."""

    projection: str
    position: int = Field(description="Last event folded into the read model.")
    head: int = Field(description="Last event recorded in the log when the query ran.")
    lag: int = Field(description="Events recorded but not yet folded (head - position).")
    stale: bool = Field(
        default=False,
        description="The read model had not reached the `min_position` asked for (after "
        "waiting up to 2 s): the answer may miss that write.",
    )


class ServiceCallSummary(BaseModel):
    id: UUID
    name: str
    status: str
    attempt: int
    due_at: datetime
    host: str
    method: str
    last_status_code: int | None
    last_error_kind: str | None
    failure_reason: str | None
    tags: list[str]
    correlation_id: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    total_duration_ms: float | None
    version: int


class ServiceCallPage(BaseModel):
    items: list[ServiceCallSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    total: int | None = Field(default=None, description="With include_total=true.")
    meta: ReadModelMeta


class ExecutionSummary(BaseModel):
    id: UUID
    service_call_id: UUID
    name: str
    attempt: int
    method: str
    host: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    status_code: int | None
    error_kind: str | None
    outcome: str


class ExecutionPage(BaseModel):
    items: list[ExecutionSummary]
    next_cursor: str | None = None
    total: int | None = None
    meta: ReadModelMeta


class ExecutionDetail(ExecutionSummary):
    meta: ReadModelMeta


class StatsEntry(BaseModel):
    bucket: datetime
    group: dict[str, str]
    executions: int
    succeeded: int
    failed: int
    success_rate: float | None
    retries: int
    errors: dict[str, int]
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class StatsReport(BaseModel):
    bucket: str
    items: list[StatsEntry]
    meta: ReadModelMeta
