"""/v1/workflows/runs: submit a workflow run, read it, cancel, pause, resume it, retry it
from its failed steps, re-run one of its steps.

Everything here reads the run's own events (never stale). Another tenant's run is a 404; a
command its status does not allow, a 409; a definition the domain refuses, a 422 naming the
field (``definition.steps[1].needs``).
"""

import json
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response

from application.workflows import Outcome
from domain.errors import InvalidRequestError
from domain.workflow_run import WorkflowRun
from domain.workflow_templates import check_json_value
from interfaces.api.dependencies import ContainerDep, TenantDep
from interfaces.api.routes.service_calls import POSITION_HEADER, _tell_position
from interfaces.api.workflow_schemas import (
    StepRerun,
    WorkflowCancel,
    WorkflowRunCreate,
    WorkflowRunPublic,
    run_public,
)

router = APIRouter(prefix="/v1/workflows/runs", tags=["workflows"])


def _public(run: WorkflowRun) -> WorkflowRunPublic:
    return run_public(run.describe())


def _written(outcome: Outcome, response: Response) -> WorkflowRunPublic:
    """The run a command left; the write's log position in ``X-Duecall-Position``."""
    _tell_position(response, outcome.position)
    return _public(outcome.run)


def _with_position(status: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI: a write's answer with ``X-Duecall-Position``."""
    return {status: {"headers": POSITION_HEADER}}


def _check_input(values: Mapping[str, Any] | None) -> None:
    """The run's input checked first, as the domain checks it: any error the submit raises
    after this is then the definition's."""
    if values is None:
        return
    try:
        json.dumps(values, allow_nan=False)
    except ValueError:
        raise InvalidRequestError("input", "must be a JSON object") from None
    check_json_value(values, "input")


def _in_definition(field: str) -> str:
    """The domain names a definition's fields from the definition (``steps[a].needs``): the
    API names them from the body (``definition.steps[a].needs``)."""
    return field if field == "definition" or field.startswith("definition.") else (
        f"definition.{field}"
    )


@router.post("", status_code=201, response_model=WorkflowRunPublic,
             responses=_with_position(201))
def submit_run(
    body: WorkflowRunCreate, container: ContainerDep, tenant: TenantDep, response: Response
) -> WorkflowRunPublic:
    """A new run of the definition (checked whole: 422 naming the field), or of a stored
    one (`definition_name`, `definition_version`), its first steps ordered at once."""
    _check_input(body.input)
    stored = body.stored()
    if stored is not None:  # errors name definition_name or definition_version
        outcome = container.workflows.submit_stored(tenant, *stored, body.input)
    else:
        assert body.definition is not None  # one of the two forms: stored() checked
        try:
            outcome = container.workflows.submit(tenant, body.definition, body.input)
        except InvalidRequestError as error:  # the same kind: a too large body stays a 413
            raise type(error)(_in_definition(error.field), error.message) from None
    response.headers["Location"] = f"/v1/workflows/runs/{outcome.run.id}"
    return _written(outcome, response)


@router.get("/{run_id}", response_model=WorkflowRunPublic)
def get_run(run_id: UUID, container: ContainerDep, tenant: TenantDep) -> WorkflowRunPublic:
    """The run as its events make it: its status, each step's state, call, key, status
    code, reason and outputs, the counts and the times."""
    return _public(container.workflows.get(tenant, run_id))


@router.post("/{run_id}/cancel", response_model=WorkflowRunPublic,
             responses=_with_position(200))
def cancel_run(
    run_id: UUID,
    container: ContainerDep,
    tenant: TenantDep,
    response: Response,
    body: WorkflowCancel | None = None,
) -> WorkflowRunPublic:
    """Cancel a run that is not finished; its steps' calls still running are cancelled in
    the same transaction (an attempt in flight finishes, is not retried)."""
    reason = body.reason if body else None
    return _written(container.workflows.cancel(tenant, run_id, reason), response)


@router.post("/{run_id}/pause", response_model=WorkflowRunPublic,
             responses=_with_position(200))
def pause_run(
    run_id: UUID, container: ContainerDep, tenant: TenantDep, response: Response
) -> WorkflowRunPublic:
    """Pause a run: its running steps finish, no new step is ordered until resumed."""
    return _written(container.workflows.pause(tenant, run_id), response)


@router.post("/{run_id}/resume", response_model=WorkflowRunPublic,
             responses=_with_position(200))
def resume_run(
    run_id: UUID, container: ContainerDep, tenant: TenantDep, response: Response
) -> WorkflowRunPublic:
    """Resume a paused run: the steps that can run are ordered."""
    return _written(container.workflows.resume(tenant, run_id), response)


@router.post("/{run_id}/retry", response_model=WorkflowRunPublic,
             responses=_with_position(200))
def retry_run(
    run_id: UUID, container: ContainerDep, tenant: TenantDep, response: Response
) -> WorkflowRunPublic:
    """Retry a failed run from its failed steps: they (and the steps skipped or cancelled
    because of them) run again a generation on, with new calls and keys; succeeded steps
    keep their outputs."""
    return _written(container.workflows.retry_from_failed(tenant, run_id), response)


@router.post("/{run_id}/steps/{step_id}/rerun", response_model=WorkflowRunPublic,
             responses=_with_position(200))
def rerun_step(
    run_id: UUID,
    step_id: str,
    container: ContainerDep,
    tenant: TenantDep,
    response: Response,
    body: StepRerun | None = None,
) -> WorkflowRunPublic:
    """Run one settled step of a finished run again, alone, with `input` laid over the
    run's input (recorded, with who asked)."""
    override = body.input if body else {}
    outcome = container.workflows.rerun_step(tenant, run_id, step_id, override, f"api:{tenant}")
    return _written(outcome, response)
