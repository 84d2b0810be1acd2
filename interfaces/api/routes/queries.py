"""Read-model queries: lists of calls and executions, the latest executions, statistics.

Answered from the projections' tables (never by replaying aggregates); every answer says how
fresh it is, in ``meta`` and in the ``X-Duecall-Position`` / ``X-Duecall-Head`` headers.
"""

from typing import Annotated, Literal
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Header, Query, Response
from starlette.exceptions import HTTPException

from interfaces.api.dependencies import ContainerDep, TenantDep
from interfaces.api.fields import DateTime, SafeText, one_of
from interfaces.api.query_schemas import (
    ExecutionDetail,
    ExecutionPage,
    ExecutionSummary,
    ReadModelMeta,
    ServiceCallPage,
    StatsReport,
)
from projections.executions import (
    OUTCOMES,
    ExecutionFilters,
    get_execution,
    latest_executions,
    list_executions,
)
from projections.freshness import Freshness
from projections.query import MAX_LIMIT
from projections.service_calls import STATUSES, ServiceCallFilters, list_service_calls
from projections.statistics_query import GROUPS, StatsQuery, statistics
from projections.status_intervals import list_calls_as_of

router = APIRouter(prefix="/v1", tags=["queries"])

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Statuses = Annotated[list[Annotated[str, one_of(STATUSES)]] | None, Query()]
Outcomes = Annotated[list[Annotated[str, one_of(OUTCOMES)]] | None, Query()]
Groups = Annotated[list[Annotated[str, one_of(GROUPS)]] | None, Query()]
Text = SafeText | None  # reaches SQL: no NUL (a 500 from the driver otherwise)
Time = DateTime | None  # RFC 3339 text only: `to=0.5` is not a date-time


def _min_position(
    min_position: Annotated[int | None, Query(ge=1, description=(
        "Read-your-writes: first wait (up to 2 s) until the read model has folded the log up "
        "to this position (the X-Duecall-Position of a write); `meta.stale` tells if not."
    ))] = None,
    x_duecall_min_position: Annotated[int | None, Header(ge=1)] = None,
) -> int | None:
    """``min_position``, or the ``X-Duecall-Min-Position`` header (the larger if both)."""
    return max((p for p in (min_position, x_duecall_min_position) if p), default=None)


MinPosition = Annotated[int | None, Depends(_min_position)]


def _meta(name: str, freshness: Freshness, response: Response) -> ReadModelMeta:
    response.headers["X-Duecall-Position"] = str(freshness.position)
    response.headers["X-Duecall-Head"] = str(freshness.head)
    return ReadModelMeta(
        projection=name, position=freshness.position, head=freshness.head, lag=freshness.lag,
        stale=freshness.stale,
    )


@router.get("/service-calls", response_model=ServiceCallPage)
def search_service_calls(
    container: ContainerDep,
    tenant: TenantDep,
    response: Response,
    status: Statuses = None,
    name: Text = None,
    tag: Text = None,
    host: Text = None,
    correlation_id: Text = None,
    created_from: Time = None,
    created_to: Time = None,
    finished_from: Time = None,
    finished_to: Time = None,
    sort: Literal["-created", "due"] = "-created",
    limit: Limit = 50,
    cursor: Text = None,
    include_total: bool = False,
    as_of: Time = None,
    min_position: MinPosition = None,
) -> ServiceCallPage:
    """Calls, newest first (or by due time), filtered; keyset-paginated with `cursor`.
    With `as_of`: the calls that were in `status` (any, if none) at that moment, with their
    `status` then (other fields as now), from the status_intervals read model."""
    filters = ServiceCallFilters(status, name, tag, host, correlation_id, created_from,
                                 created_to, finished_from, finished_to)
    with container.read_models.reading("service_calls", min_position) as (curs, freshness):
        if as_of is not None:
            page = list_calls_as_of(curs, tenant, filters, as_of, sort=sort, limit=limit,
                                    cursor=cursor, include_total=include_total)
        else:
            page = list_service_calls(curs, tenant, filters, sort=sort, limit=limit,
                                      cursor=cursor, include_total=include_total)
    meta = _meta("service_calls", freshness, response)
    return ServiceCallPage.model_validate({**page.__dict__, "meta": meta})


@router.get("/executions", response_model=ExecutionPage)
def search_executions(
    container: ContainerDep,
    tenant: TenantDep,
    response: Response,
    outcome: Outcomes = None,
    name: Text = None,
    host: Text = None,
    service_call_id: UUID | None = None,
    error_kind: Text = None,
    started_from: Time = None,
    started_to: Time = None,
    limit: Limit = 50,
    cursor: Text = None,
    include_total: bool = False,
    min_position: MinPosition = None,
) -> ExecutionPage:
    """Attempts, newest first, filtered; keyset-paginated with `cursor`."""
    filters = ExecutionFilters(outcome, name, host, service_call_id, error_kind, started_from,
                               started_to)
    with container.read_models.reading("executions", min_position) as (curs, freshness):
        page = list_executions(curs, tenant, filters, limit=limit, cursor=cursor,
                               include_total=include_total)
    meta = _meta("executions", freshness, response)
    return ExecutionPage.model_validate({**page.__dict__, "meta": meta})


@router.get("/executions/latest", response_model=ExecutionPage)
def latest(
    container: ContainerDep,
    tenant: TenantDep,
    response: Response,
    name: Text = None,
    min_position: MinPosition = None,
) -> ExecutionPage:
    """The newest execution of each call name (or only of `name`)."""
    with container.read_models.reading("executions", min_position) as (curs, freshness):
        items = latest_executions(curs, tenant, name)
    meta = _meta("executions", freshness, response)
    summaries = [ExecutionSummary.model_validate(item) for item in items]
    return ExecutionPage(items=summaries, meta=meta)


@router.get("/executions/{execution_id}", response_model=ExecutionDetail)
def execution(
    execution_id: UUID,
    container: ContainerDep,
    tenant: TenantDep,
    response: Response,
    min_position: MinPosition = None,
) -> ExecutionDetail:
    with container.read_models.reading("executions", min_position) as (curs, freshness):
        found = get_execution(curs, tenant, execution_id)
    meta = _meta("executions", freshness, response)
    if found is None:
        raise HTTPException(404, f"execution {execution_id} not found")
    return ExecutionDetail.model_validate({**found, "meta": meta})


@router.get("/stats", response_model=StatsReport)
def stats(
    container: ContainerDep,
    tenant: TenantDep,
    response: Response,
    start: Annotated[DateTime, Query(alias="from")],
    end: Annotated[DateTime, Query(alias="to")],
    bucket: Literal["minute", "hour", "day"] = "hour",
    group_by: Groups = None,
) -> Response:
    """Counts, success rate, retries and p50/p95/p99 latency per bucket (and group)."""
    query = StatsQuery(start, end, bucket, tuple(group_by or ()))
    with container.read_models.reading("statistics") as (curs, freshness):
        items = statistics(curs, tenant, query)
    meta = _meta("statistics", freshness, response)
    # Thousands of entries: serialized as they are (orjson, same JSON as pydantic's), not
    # validated again; StatsReport documents them and the tests check that they conform.
    body = orjson.dumps({"bucket": bucket, "items": items, "meta": meta.model_dump()},
                        option=orjson.OPT_UTC_Z)
    return Response(body, media_type="application/json", headers=response.headers)
