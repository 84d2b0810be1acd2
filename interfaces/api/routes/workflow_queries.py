"""The list of workflow runs and a name's latest run, from the `workflow_runs` read model:
`GET /v1/workflows/runs`, `GET /v1/workflows/runs/latest`.

Answered from the read model's table (never by replaying runs), with filters, keyset pages and
read-your-writes as the list of calls (``queries.py``); how fresh the answer is in ``meta`` and
the ``X-Duecall-Position`` / ``X-Duecall-Head`` headers. One run, as its events make it, and
the commands are in ``workflows.py``; this router is included first, so ``/latest`` is never
taken for a run's id.
"""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from domain.workflow_definition import NAME
from interfaces.api.dependencies import ContainerDep, TenantDep
from interfaces.api.fields import AwareDateTime, SafeText
from interfaces.api.query_schemas import ReadModelMeta
from interfaces.api.routes.queries import Limit, MinPosition, _meta
from interfaces.api.workflow_schemas import WorkflowRunCounts
from projections.workflow_runs import (
    STATUSES,
    WorkflowRunFilters,
    latest_workflow_run,
    list_workflow_runs,
)

router = APIRouter(prefix="/v1/workflows/runs", tags=["workflows"])

_ONE_STATUS = "|".join(sorted(STATUSES))
# Documents a value as a status or a comma list of them; the read model's query checks it
# (a 422 naming `status` and the choices), as the calls list's statuses.
STATUS_LIST = f"^(?:{_ONE_STATUS})(?:,(?:{_ONE_STATUS}))*$"
MAX_STATUS_LIST = len(",".join(sorted(STATUSES)))
Statuses = Annotated[
    list[Annotated[SafeText, Field(max_length=MAX_STATUS_LIST,
                                   json_schema_extra={"pattern": STATUS_LIST})]] | None,
    Query(description="Any of these statuses: repeat the parameter, or a comma list "
          "(`status=failed,cancelled`); without it every status."),
]
_NAME_RULE: dict[str, Any] = {
    "min_length": 1, "max_length": 128, "pattern": f"^{NAME.pattern}$",
    "description": "A workflow's name (the definition's `name`), exactly.",
}
RunName = Annotated[str, Query(**_NAME_RULE)]
SomeRunName = Annotated[str | None, Query(**_NAME_RULE)]
Cursor = Annotated[SafeText | None, Query(
    max_length=512, description="The `next_cursor` of the page before (opaque).",
)]
After = Annotated[AwareDateTime | None, Query(
    description="Runs submitted at or after this time (RFC 3339 with an offset).",
)]
Before = Annotated[AwareDateTime | None, Query(
    description="Runs submitted before this time (RFC 3339 with an offset).",
)]


class WorkflowRunListCounts(WorkflowRunCounts):
    running: int = Field(description="Steps whose call is running now.")


class WorkflowRunSummary(BaseModel):
    id: UUID
    name: str
    status: str = Field(description="`pending`, `running`, `paused`, `compensating`, "
                        "`succeeded`, `failed` or `cancelled`.")
    definition_version: int | None = Field(description="A stored definition's version.")
    origin: str | None = Field(description="What started it (`schedule:<id>`); null: the API.")
    halted_by: str | None = Field(description="The step whose failure halted the run.")
    compensation: str | None = Field(description="`compensated` or `compensation_failed`.")
    cancel_reason: str | None
    counts: WorkflowRunListCounts = Field(description="Its steps, by state (latest generation).")
    duration_seconds: float | None = Field(
        description="From the first step ordered to the run's end (null until it ends)."
    )
    created_at: datetime = Field(description="When it was submitted.")
    started_at: datetime | None = Field(description="When its first step was ordered.")
    finished_at: datetime | None
    updated_at: datetime = Field(description="Its last event.")
    version: int


class WorkflowRunPage(BaseModel):
    items: list[WorkflowRunSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    total: int | None = Field(default=None, description="With include_total=true.")
    meta: ReadModelMeta


class WorkflowRunLatest(WorkflowRunSummary):
    meta: ReadModelMeta


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    """A read model row as the API answers it: its step counts together."""
    counts = {key.removeprefix("steps_"): value for key, value in row.items()
              if key.startswith("steps_")}
    rest = {key: value for key, value in row.items() if not key.startswith("steps_")}
    return {**rest, "counts": counts}


def _statuses(values: list[str] | None) -> list[str] | None:
    """Each value a status or a comma list of them (checked by the query: ``status``)."""
    return [part for value in values for part in value.split(",")] if values else None


@router.get("", response_model=WorkflowRunPage)
def search_runs(
    container: ContainerDep,
    tenant: TenantDep,
    response: Response,
    status: Statuses = None,
    name: SomeRunName = None,
    created_after: After = None,
    created_before: Before = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    include_total: bool = False,
    min_position: MinPosition = None,
) -> WorkflowRunPage:
    """The tenant's workflow runs, newest first, filtered; keyset-paginated with `cursor`.
    From a read model that may lag the runs by a moment: `meta` says how far it has got, and
    `min_position` (a write's `X-Duecall-Position`) waits for it."""
    filters = WorkflowRunFilters(_statuses(status), name, created_after, created_before)
    with container.read_models.reading("workflow_runs", min_position) as (curs, freshness):
        page = list_workflow_runs(curs, tenant, filters, limit=limit, cursor=cursor,
                                  include_total=include_total)
    meta = _meta("workflow_runs", freshness, response)
    items = [_summary(item) for item in page.items]
    return WorkflowRunPage.model_validate(
        {"items": items, "next_cursor": page.next_cursor, "total": page.total, "meta": meta}
    )


@router.get("/latest", response_model=WorkflowRunLatest,
            responses={404: {"description": "The tenant has no run of that name (yet: see "
                             "`min_position`)."}})
def latest_run(
    container: ContainerDep,
    tenant: TenantDep,
    response: Response,
    name: RunName,
    min_position: MinPosition = None,
) -> WorkflowRunLatest:
    """The newest run (by submit time) of the workflow `name`; 404 if the tenant has none."""
    with container.read_models.reading("workflow_runs", min_position) as (curs, freshness):
        found = latest_workflow_run(curs, tenant, name)
    meta = _meta("workflow_runs", freshness, response)
    if found is None:
        raise HTTPException(404, f"no workflow run named {name} (read model at position "
                            f"{freshness.position})")
    return WorkflowRunLatest.model_validate({**_summary(found), "meta": meta})
