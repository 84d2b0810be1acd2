"""/v1/schedules: create a schedule, read, change, pause, resume, trigger, backfill or delete
it; its next fire times, its fires and its events; a spec's fire times (``:preview``).

The list (``GET /v1/schedules``) is the read model's, in ``schedule_queries.py``. Everything
here reads the schedule's own events (never stale). Another tenant's schedule is a 404; a
command its status does not allow, a 409.
"""

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from application.audit import VersionPage
from application.clock import utcnow
from application.schedule_fires import MAX_FIRES, fires_of
from application.schedules import CreateSchedule, Outcome, ScheduleNotFoundError, UpdateSchedule
from domain.errors import InvalidRequestError
from domain.headers import check_header_size
from domain.request import check_body_size
from domain.schedule import Schedule, ScheduleStatus, ScheduleTransitionError
from domain.schedule_plan import DuePlan, PlannedFire, PlannedSkip
from domain.schedule_spec import ScheduleSpec
from domain.schedule_times import Fire, check_fires_after, fire_idempotency_key, next_fires
from domain.service_call import ServiceCall
from domain.wall_clock import tzdata_version
from domain.workflow_run import WorkflowRun
from infrastructure.container import Container
from interfaces.api.dependencies import AuditDep, ContainerDep, TenantDep
from interfaces.api.fields import AwareDateTime
from interfaces.api.routes.audit import NDJSON, RecordedEventPublic, _ndjson, public
from interfaces.api.routes.queries import Limit
from interfaces.api.routes.service_calls import POSITION_HEADER, _tell_position
from interfaces.api.schedule_schemas import (
    BackfillAction,
    BackfillRequest,
    BackfillResult,
    FiredCall,
    FiredRun,
    FirePreview,
    FireTime,
    ScheduleCallCreate,
    ScheduleCreate,
    ScheduleFire,
    ScheduleFirePage,
    SchedulePreviewRequest,
    SchedulePublic,
    ScheduleUpdate,
    ScheduleWorkflowCreate,
    TriggerResult,
    in_range,
)

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])

PreviewCount = Annotated[int, Query(ge=1, le=100, description="How many fire times (1-100).")]
After = Annotated[
    AwareDateTime | None, Query(description="The fire times after this one (default: now).")
]


class ScheduleEventHistory(BaseModel):
    schedule_id: UUID
    items: list[RecordedEventPublic]
    next_cursor: int | None = Field(
        description="Pass as `cursor` (with the same `sort`) for the next page."
    )


def _check_after(after: datetime | None) -> None:
    try:
        in_range(after)
    except ValueError as error:
        raise InvalidRequestError("after", str(error)) from None


def _public(schedule: Schedule) -> SchedulePublic:
    return SchedulePublic.model_validate(schedule.describe())


def _written(outcome: Outcome, response: Response) -> SchedulePublic:
    """The schedule a command left; the write's log position in ``X-Duecall-Position`` (none
    when the command changed nothing)."""
    _tell_position(response, outcome.position)
    return _public(outcome.schedule)


def _with_position(status: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI: a write's answer with ``X-Duecall-Position``."""
    return {status: {"headers": POSITION_HEADER}}


def _template(
    call: ScheduleCallCreate | None,
    workflow: ScheduleWorkflowCreate | None,
    tenant: str,
    container: Container,
) -> dict[str, Any]:
    """What each fire submits: the call template, checked as a call's submit is (sizes
    included), the tenant's default retry policy filled in, an error naming its field under
    ``call.``; or the workflow template, which the domain checks (``workflow.``)."""
    if (call is None) == (workflow is None):
        raise InvalidRequestError("workflow" if workflow else "call",
                                  "give exactly one of call and workflow")
    if workflow is not None:
        return {"workflow": {"definition": workflow.definition, "input": workflow.input or {}}}
    assert call is not None
    try:
        request = call.request.spec()
        check_body_size(request.body, container.settings.max_request_body_bytes)
        check_header_size(request.headers, container.settings.max_request_header_bytes)
        overrides = call.retry_policy.model_dump(exclude_unset=True) if call.retry_policy else None
        policy = container.tenant_defaults.policy_for_call(tenant, overrides)
    except InvalidRequestError as error:  # the same kind: a too large body stays a 413
        raise type(error)(f"call.{error.field}", error.message) from None
    return {"request": request.as_dict(), "retry_policy": policy.as_dict(), "tags": call.tags}


Fired = ServiceCall | WorkflowRun  # what a fire submitted


def _fired(call: ServiceCall, nominal: datetime | None = None) -> FiredCall:
    return FiredCall(
        id=call.id,
        nominal=nominal or call.due_at,
        due_at=call.due_at,
        idempotency_key=str(call.idempotency_key),
        status=str(call.status),
    )


def _started(run: WorkflowRun, nominal: datetime | None = None) -> FiredRun:
    return FiredRun(
        id=run.id,
        nominal=nominal or run.submitted_at,
        idempotency_key=str(run.idempotency_key),
        status=str(run.status),
    )


def _fire_time(fire: Fire, spec: ScheduleSpec) -> FireTime:
    return FireTime(
        nominal=fire.nominal,
        local=fire.local,
        zoned=fire.nominal.astimezone(spec.zone),
        dst_note=fire.dst_note,
        fires=not fire.skipped,
    )


def _preview(spec: ScheduleSpec, fires: list[Fire]) -> FirePreview:
    return FirePreview(
        timezone=spec.timezone,
        tzdata=tzdata_version(),
        items=[_fire_time(fire, spec) for fire in fires],
    )


@router.post("", status_code=201, response_model=SchedulePublic, responses=_with_position(201))
def create_schedule(
    body: ScheduleCreate, container: ContainerDep, tenant: TenantDep, response: Response
) -> SchedulePublic:
    """A new schedule, active at once: its first fire is the spec's first time after now.
    Each fire submits its `call`, or starts a run of its `workflow` (exactly one of them)."""
    spec = body.spec.to_domain()
    template = _template(body.call, body.workflow, tenant, container)
    outcome = container.schedules.create(CreateSchedule(tenant, body.name, template, spec))
    response.headers["Location"] = f"/v1/schedules/{outcome.schedule.id}"
    return _written(outcome, response)


@router.post(":preview", response_model=FirePreview)
def preview_spec(
    body: SchedulePreviewRequest, container: ContainerDep, tenant: TenantDep
) -> FirePreview:
    """A spec checked as a create would check it (422 naming the field), and its next
    `count` fire times after `after` (default now); nothing is stored."""
    spec = body.spec.to_domain()
    after = body.after or utcnow()
    check_fires_after(spec, after)
    return _preview(spec, container.schedules.preview(spec, after, body.count))


@router.get("/{schedule_id}", response_model=SchedulePublic)
def get_schedule(schedule_id: UUID, container: ContainerDep, tenant: TenantDep) -> SchedulePublic:
    """The schedule as its events make it. A deleted one is a 404 (its fires and events stay
    readable; the list shows it with `status=deleted`)."""
    schedule = container.schedules.get(tenant, schedule_id)
    if schedule.status == ScheduleStatus.DELETED:
        gone = ScheduleNotFoundError(schedule_id)
        gone.args = (f"schedule {schedule_id} was deleted (its events: "
                     f"/v1/schedules/{schedule_id}/events)",)
        raise gone
    return _public(schedule)


@router.patch("/{schedule_id}", response_model=SchedulePublic, responses=_with_position(200))
def update_schedule(
    schedule_id: UUID,
    body: ScheduleUpdate,
    container: ContainerDep,
    tenant: TenantDep,
    response: Response,
) -> SchedulePublic:
    """A new name, spec or call (each whole), in force from now: a new spec's first fire is
    its first time after now; a finished schedule whose new spec fires is active again."""
    spec = None if body.spec is None else body.spec.to_domain()
    template = None
    if body.call is not None or body.workflow is not None:
        template = _template(body.call, body.workflow, tenant, container)
    if body.name is None and spec is None and template is None:  # nothing to change
        schedule = container.schedules.get(tenant, schedule_id)
        if schedule.status == ScheduleStatus.DELETED:
            raise ScheduleTransitionError("update", schedule.status)
        return _public(schedule)
    changes = UpdateSchedule(name=body.name, template=template, spec=spec)
    return _written(container.schedules.update(tenant, schedule_id, changes), response)


@router.delete("/{schedule_id}", response_model=SchedulePublic, responses=_with_position(200))
def delete_schedule(
    schedule_id: UUID, container: ContainerDep, tenant: TenantDep, response: Response
) -> SchedulePublic:
    """Delete the schedule: it fires no more (its calls already submitted go on); its
    history stays readable. Deleting it again changes nothing."""
    return _written(container.schedules.delete(tenant, schedule_id), response)


@router.post(
    "/{schedule_id}/pause", response_model=SchedulePublic, responses=_with_position(200)
)
def pause_schedule(
    schedule_id: UUID, container: ContainerDep, tenant: TenantDep, response: Response
) -> SchedulePublic:
    """Pause an active schedule (paused: no change): no fires until resumed."""
    return _written(container.schedules.pause(tenant, schedule_id), response)


@router.post(
    "/{schedule_id}/resume", response_model=SchedulePublic, responses=_with_position(200)
)
def resume_schedule(
    schedule_id: UUID, container: ContainerDep, tenant: TenantDep, response: Response
) -> SchedulePublic:
    """Resume a paused schedule (active: no change); the times due while it was paused are
    missed ones (`on_missed`)."""
    return _written(container.schedules.resume(tenant, schedule_id), response)


@router.post(
    "/{schedule_id}/trigger",
    status_code=201,
    response_model=TriggerResult,
    responses=_with_position(201),
)
def trigger_schedule(
    schedule_id: UUID, container: ContainerDep, tenant: TenantDep, response: Response
) -> TriggerResult:
    """Fire now, out of schedule (any status but deleted): a call due now (or a workflow
    run started now), with its own idempotency key; no overlap rule applies and it does not
    count towards `max_runs`."""
    outcome = container.schedules.trigger(tenant, schedule_id)
    for run in outcome.runs:
        response.headers["Location"] = f"/v1/workflows/runs/{run.id}"
        return TriggerResult(call=None, run=_started(run), schedule=_written(outcome, response))
    (call,) = outcome.calls
    response.headers["Location"] = f"/v1/service-calls/{call.id}"
    return TriggerResult(call=_fired(call), schedule=_written(outcome, response))


@router.post(
    "/{schedule_id}/backfill", response_model=BackfillResult, responses=_with_position(200)
)
def backfill_schedule(
    schedule_id: UUID,
    body: BackfillRequest,
    container: ContainerDep,
    tenant: TenantDep,
    response: Response,
) -> BackfillResult:
    """Fire the nominal times in [start, end] that were never fired (by the overlap policy, at
    the catch-up rate); with `dry_run`, only say what would be done."""
    outcome = container.schedules.backfill(
        tenant, schedule_id, body.start, body.end, body.dry_run
    )
    schedule = outcome.schedule
    plan = outcome.plan or DuePlan()
    fired: list[Fired] = [*outcome.calls, *outcome.runs]
    calls = {str(c.idempotency_key): c for c in fired}
    items = [_backfill_action(schedule, action, calls) for action in plan.actions]
    found = _by_nominal(schedule, plan, calls)
    return BackfillResult(
        dry_run=body.dry_run,
        items=items,
        more=plan.more,
        calls=[_fired(c, nominal) for c, nominal in found if isinstance(c, ServiceCall)],
        runs=[_started(r, nominal) for r, nominal in found if isinstance(r, WorkflowRun)],
        schedule=_written(outcome, response),  # a dry run records nothing: no position
    )


def _backfill_action(
    schedule: Schedule, action: Any, calls: dict[str, Fired]
) -> BackfillAction:
    fire: Fire = action.fire
    values: dict[str, Any] = {
        "nominal": fire.nominal,
        "local": fire.local,
        "dst_note": fire.dst_note,
        "due_at": None,
        "reason": None,
        "call_id": None,
        "run_id": None,
    }
    if isinstance(action, PlannedFire):
        call = calls.get(fire_idempotency_key(schedule.id, fire.nominal))
        kind = "run_id" if isinstance(call, WorkflowRun) else "call_id"
        values.update({"action": "fire", "due_at": action.due_at, kind: call and call.id})
    elif isinstance(action, PlannedSkip):
        values.update(action="skip", reason=str(action.reason))
    else:
        values.update(action="buffer")
    return BackfillAction.model_validate(values)


def _by_nominal(
    schedule: Schedule, plan: DuePlan, calls: dict[str, Fired]
) -> list[tuple[Fired, datetime]]:
    found = []
    for planned in plan.fires:
        call = calls.get(fire_idempotency_key(schedule.id, planned.fire.nominal))
        if call is not None:
            found.append((call, planned.fire.nominal))
    return found


@router.get("/{schedule_id}/preview", response_model=FirePreview)
def preview_schedule(
    schedule_id: UUID,
    container: ContainerDep,
    tenant: TenantDep,
    count: PreviewCount = 10,
    after: After = None,
) -> FirePreview:
    """The schedule's next `count` nominal times after `after` (default now), by its spec and
    the runs it has left, with each one's wall time and DST note (a wall time gap=skip
    skips is listed, `fires: false`). A deleted schedule has none; a paused one's are the
    times it would fire if resumed by then."""
    _check_after(after)
    schedule = container.schedules.get(tenant, schedule_id)
    if schedule.status == ScheduleStatus.DELETED:
        return _preview(schedule.spec, [])
    done = schedule.runs + len(schedule.buffered)
    fires = next_fires(
        schedule.spec, after or utcnow(), count, runs_done=done, include_skipped=True
    )
    return _preview(schedule.spec, fires)


@router.get("/{schedule_id}/fires", response_model=ScheduleFirePage)
def list_fires(
    schedule_id: UUID,
    container: ContainerDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=MAX_FIRES)] = 50,
    cursor: Annotated[
        int | None, Query(ge=1, description="The `next_cursor` of the previous page.")
    ] = None,
) -> ScheduleFirePage:
    """The schedule's fires (scheduled, caught up, buffered, backfilled, triggered), newest
    first: each one's nominal time, due time and call (or, a workflow schedule's, the run
    it started: `run_id`), with its status now."""
    schedule = container.schedules.get(tenant, schedule_id)
    page = fires_of(container.service_calls, schedule, limit, cursor)
    items = [ScheduleFire.model_validate(asdict(fire)) for fire in page.items]
    return ScheduleFirePage(items=items, next_cursor=page.next_cursor)


@router.get(
    "/{schedule_id}/events",
    response_model=ScheduleEventHistory,
    responses={200: {"content": {NDJSON: {}}}},
)
def schedule_events(
    schedule_id: UUID,
    container: ContainerDep,
    audit: AuditDep,
    tenant: TenantDep,
    format: Literal["json", "ndjson"] = "json",
    limit: Limit = 50,
    cursor: Annotated[int | None, Query(ge=1, description=(
        "The `next_cursor` of the previous page: the events after this version (before it "
        "with `sort=-version`)."
    ))] = None,
    sort: Annotated[Literal["version", "-version"], Query(description=(
        "`version`: oldest first, in the order they were recorded; `-version`: newest first."
    ))] = "version",
) -> ScheduleEventHistory | StreamingResponse:
    """The schedule's events as recorded (secrets redacted), as a call's events are shown,
    a page at a time (its history grows with every fire): oldest first, or newest first with
    `sort=-version`; keyset-paginated by version with `cursor`. As NDJSON, the next page is
    `cursor=<version of the last line>`, until a page has fewer than `limit` lines."""
    schedule = container.schedules.get(tenant, schedule_id)
    page = audit.page(schedule.id, VersionPage(limit, cursor, newest_first=sort == "-version"))
    if format == "ndjson":
        return StreamingResponse(_ndjson(page.items), media_type=NDJSON)
    items = [RecordedEventPublic.model_validate(public(e)) for e in page.items]
    return ScheduleEventHistory(schedule_id=schedule.id, items=items, next_cursor=page.next_cursor)
