"""The list of schedules, from the `schedules` read model: `GET /v1/schedules`.

Answered from the read model's table (never by replaying aggregates), with filters, keyset
pages and read-your-writes as the list of calls (``queries.py``); the other schedule routes
(one schedule, its commands) are in ``schedules.py``.
"""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from interfaces.api.dependencies import ContainerDep, TenantDep
from interfaces.api.fields import one_of
from interfaces.api.query_schemas import ReadModelMeta
from interfaces.api.routes.queries import Limit, MinPosition, Text, _meta
from projections.schedules import STATUSES, ScheduleFilters, list_schedules

router = APIRouter(prefix="/v1", tags=["schedules"])

Statuses = Annotated[list[Annotated[str, one_of(STATUSES)]] | None, Query(description=(
    "Any of these statuses; without it every status but `deleted`."
))]


class ScheduleSummary(BaseModel):
    id: UUID
    name: str
    status: str
    pause_reason: str | None
    finish_reason: str | None
    kind: str = Field(description="`cron` or `interval`.")
    cron: str | None
    interval_seconds: int | None
    timezone: str
    overlap: str
    on_missed: str
    max_runs: int | None
    next_fire_at: datetime | None = Field(description="The next nominal fire time.")
    last_fired_nominal: datetime | None
    last_fired_at: datetime | None = Field(description="When the last fire's call was due.")
    last_call_id: UUID | None = Field(
        description="The call of the last fire or trigger (a workflow schedule's: its run)."
    )
    last_triggered_at: datetime | None
    runs: int = Field(description="Fires that count towards `max_runs` (not backfills).")
    fired: int
    triggered: int
    skipped: int
    missed: int
    buffered: int = Field(description="Fires waiting for the one running (overlap buffer).")
    running: int = Field(description="Fired or triggered calls (or runs) not yet terminal.")
    succeeded: int
    failed: int
    cancelled: int
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime
    version: int


class SchedulePage(BaseModel):
    items: list[ScheduleSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    total: int | None = Field(default=None, description="With include_total=true.")
    meta: ReadModelMeta


@router.get("/schedules", response_model=SchedulePage)
def search_schedules(
    container: ContainerDep,
    tenant: TenantDep,
    response: Response,
    status: Statuses = None,
    name: Text = None,
    sort: Literal["-created", "next_fire"] = "-created",
    limit: Limit = 50,
    cursor: Text = None,
    include_total: bool = False,
    min_position: MinPosition = None,
) -> SchedulePage:
    """Schedules, newest first (or by next fire time, those without one last), filtered;
    keyset-paginated with `cursor`. Deleted schedules only when `status=deleted` is asked."""
    filters = ScheduleFilters(status, name)
    with container.read_models.reading("schedules", min_position) as (curs, freshness):
        page = list_schedules(curs, tenant, filters, sort=sort, limit=limit, cursor=cursor,
                              include_total=include_total)
    meta = _meta("schedules", freshness, response)
    return SchedulePage.model_validate({**page.__dict__, "meta": meta})
