"""The dashboard's workflow pages: ``/ui/workflows`` (the runs) and ``/ui/workflows/runs/{id}``.

Built as the call and schedule pages are (``ui.py``): the pages are shells without tenant
data; their script fetches the fragments under ``/ui/parts/workflows`` with the API key. The
list is a page of the ``workflow_runs`` read model (``list_workflow_runs``: filters, keyset
pages, read-your-writes with ``min_position``, how fresh it is). A run's fragment is read
from the run's own events (never stale, as ``GET
/v1/workflows/runs/{id}``): its header, its DAG as inline SVG laid out here
(``dag_layout``), its steps with their calls' attempts (from the ``service_calls`` read
model: one query by primary key) and its newest events. Another tenant's run is a 404.
The page follows the event stream: the run's events, and its steps' calls starting attempts.
"""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import Field

from application.audit import VersionPage
from domain.workflow_run_status import RunStatus
from interfaces.api.dag_layout import StepView, dag_layout, node_state
from interfaces.api.dependencies import AuditDep, ContainerDep, TenantDep
from interfaces.api.routes.audit import RecordedEventPublic, public
from interfaces.api.routes.queries import _meta
from interfaces.api.ui import _page, _part, described
from interfaces.api.workflow_schemas import StepRunPublic, WorkflowRunPublic, run_public
from interfaces.workflow_timeline import RUN_EVENTS
from projections.query import MAX_LIMIT
from projections.service_calls import attempts_of
from projections.workflow_runs import WorkflowRunFilters, list_workflow_runs

router = APIRouter(prefix="/ui", include_in_schema=False)
STATUSES = tuple(s.value for s in RunStatus)
# The newest events shown: a whole run of the default 100 steps (created, each step started
# and finished, the run's end) fits; a longer history says how many are left out.
RECENT_EVENTS = 250


# -- pages: shells without tenant data --------------------------------------------------


@router.get("/workflows", response_class=HTMLResponse)
def workflows_page(request: Request) -> HTMLResponse:
    return _page(request, "workflows.html", page="workflows", statuses=STATUSES)


@router.get("/workflows/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: UUID) -> HTMLResponse:
    return _page(request, "workflow_run.html", page="workflow_run", run_id=str(run_id))


# -- fragments: tenant data, behind the API key -------------------------------------------


@router.get("/parts/workflows/runs", response_class=HTMLResponse)
def runs_part(
    request: Request,
    container: ContainerDep,
    tenant: TenantDep,
    status: Annotated[list[Annotated[str, Field(max_length=20)]] | None, Query()] = None,
    name: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 25,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    min_position: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    """A page of the runs, newest first (rows and the next cursor), from the ``workflow_runs``
    read model; an unknown status is a 422 naming ``status``."""
    filters = WorkflowRunFilters(status=[s for s in status or () if s] or None,
                                 name=name or None)
    with container.read_models.reading("workflow_runs", min_position) as (curs, freshness):
        page = list_workflow_runs(curs, tenant, filters, limit=limit, cursor=cursor or None)
    meta = _meta("workflow_runs", freshness, Response())
    return _part(request, "_workflow_runs.html", {"page": page, "meta": meta})


@router.get("/parts/workflows/runs/{run_id}", response_class=HTMLResponse)
def run_part(
    request: Request,
    run_id: UUID,
    container: ContainerDep,
    tenant: TenantDep,
    audit: AuditDep,
    min_position: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    """A run: its header, its DAG, its steps (with their calls' attempts; ``min_position``:
    once the calls' read model has folded that far, bounded) and its newest events."""
    run = container.workflows.get(tenant, run_id)  # 404: not this tenant's
    shown = run_public(run.describe())
    order = run.definition.order
    call_ids = [s.call_id for s in (*shown.steps.values(), *shown.compensations.values())
                if s.call_id is not None]
    with container.read_models.reading("service_calls", min_position) as (curs, _):
        attempts = attempts_of(curs, tenant, call_ids)
    page = audit.page(run.id, VersionPage(RECENT_EVENTS, newest_first=True))
    events = [
        described(
            RecordedEventPublic.model_validate(public(e)).model_dump(mode="json"), RUN_EVENTS
        )
        for e in page.items
    ]
    context = {
        "run": shown,
        "steps": [(step_id, shown.steps[step_id]) for step_id in order],
        "attempts": attempts,
        "states": _states(shown),
        "layout": dag_layout(run.definition.needs, _views(shown, attempts)),
        "call_ids": " ".join(str(c) for c in call_ids),
        "events": events,
        "event_count": run.version,  # one version per event: no count query
    }
    return _part(request, "_workflow_run.html", context)


def _states(run: WorkflowRunPublic) -> dict[str, str]:
    """Each step's node state (``compensated`` for a step undone)."""
    return {
        step_id: node_state(
            step.state, run.compensations[step_id].state if step_id in run.compensations else None
        )
        for step_id, step in run.steps.items()
    }


def _views(run: WorkflowRunPublic, attempts: dict[UUID, int]) -> dict[str, StepView]:
    states = _states(run)
    return {
        step_id: StepView(
            states[step_id], str(step.call_id) if step.call_id else None, _detail(step, attempts)
        )
        for step_id, step in run.steps.items()
    }


def _detail(step: StepRunPublic, attempts: dict[UUID, int]) -> str:
    """Under a node's state: the status code and, past the first, the attempts."""
    parts = []
    if step.status_code is not None:
        parts.append(str(step.status_code))
    tries = attempts.get(step.call_id) if step.call_id else None
    if tries and tries > 1:
        parts.append(f"{tries} attempts")
    if step.generation > 1:
        parts.append(f"gen {step.generation}")
    return " · ".join(parts)
