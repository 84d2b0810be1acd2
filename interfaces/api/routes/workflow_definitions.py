"""/v1/workflows/definitions: a tenant's stored workflow definitions, by name, with immutable
versions; /v1/workflows/validate: the dry run of a definition.

`PUT` stores a definition as its name's next version (201), or answers the newest version
when it is the same (200, nothing recorded). One definition (the newest, or a version) is
read from its own events; the list is the `workflow_definitions` read model's, with
read-your-writes (`min_position`). Another tenant's definition is a 404. A run of a stored
definition is submitted with `definition_name` (``routes/workflows.py``).
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Response
from fastapi.responses import JSONResponse

from domain.workflow_stored_definition import MAX_VERSIONS, StoredWorkflowDefinition
from interfaces.api.dependencies import ContainerDep, TenantDep
from interfaces.api.problems import problem
from interfaces.api.routes.queries import Limit, MinPosition, Text, _meta
from interfaces.api.routes.service_calls import POSITION_HEADER, _tell_position
from interfaces.api.routes.workflows import _in_definition
from interfaces.api.workflow_definition_schemas import (
    DefinitionName,
    StepPlan,
    WorkflowDefinitionPage,
    WorkflowDefinitionPublic,
    WorkflowValidate,
    WorkflowValidation,
)
from projections.workflow_definitions import list_definitions

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])

Version = Annotated[int, Path(ge=1, le=MAX_VERSIONS)]
Definition = Annotated[dict[str, Any], Body(
    description="The workflow definition (docs/workflows.md); its `name`, if given, must be "
    "the one in the path. Checked whole: a refusal is a 422 naming the field.",
)]


def _public(stored: StoredWorkflowDefinition) -> WorkflowDefinitionPublic:
    return WorkflowDefinitionPublic.model_validate(stored.describe())


@router.put(
    "/definitions/{name}", status_code=201, response_model=WorkflowDefinitionPublic,
    responses={200: {"description": "The same as the newest version: nothing stored."},
               201: {"description": "Stored as the next version.", "headers": POSITION_HEADER}},
)
def put_definition(
    name: DefinitionName,
    definition: Definition,
    container: ContainerDep,
    tenant: TenantDep,
    response: Response,
) -> WorkflowDefinitionPublic:
    """Store the definition as `name`'s next version (201), or, when it is the same as the
    newest version, answer that version (200)."""
    stored = container.workflows.definitions.put(tenant, name, definition)
    if not stored.added:
        response.status_code = 200
    _tell_position(response, stored.position)
    version = stored.definition.version
    response.headers["Location"] = f"/v1/workflows/definitions/{name}/versions/{version}"
    return _public(stored.definition)


@router.get("/definitions", response_model=WorkflowDefinitionPage)
def list_workflow_definitions(
    container: ContainerDep,
    tenant: TenantDep,
    response: Response,
    limit: Limit = 50,
    cursor: Text = None,
    min_position: MinPosition = None,
) -> WorkflowDefinitionPage:
    """The tenant's stored definitions with their newest version, the newest registered
    first; keyset-paginated with `cursor`."""
    with container.read_models.reading("workflow_definitions", min_position) as (
        curs, freshness,
    ):
        page = list_definitions(curs, tenant, limit=limit, cursor=cursor)
    meta = _meta("workflow_definitions", freshness, response)
    return WorkflowDefinitionPage.model_validate(
        {"items": page.items, "next_cursor": page.next_cursor, "meta": meta}
    )


@router.get("/definitions/{name}", response_model=WorkflowDefinitionPublic)
def get_definition(
    name: DefinitionName, container: ContainerDep, tenant: TenantDep
) -> WorkflowDefinitionPublic:
    """The newest version of the definition."""
    return _public(container.workflows.definitions.get(tenant, name))


@router.get("/definitions/{name}/versions/{version}", response_model=WorkflowDefinitionPublic)
def get_definition_version(
    name: DefinitionName, version: Version, container: ContainerDep, tenant: TenantDep
) -> WorkflowDefinitionPublic:
    """One version of the definition, as it was stored."""
    return _public(container.workflows.definitions.get(tenant, name, version))


@router.post("/validate", response_model=WorkflowValidation)
def validate_definition(
    body: WorkflowValidate, container: ContainerDep, tenant: TenantDep
) -> WorkflowValidation | JSONResponse:
    """A dry run: the definition checked as a submit checks it (cycles, unknown `needs`,
    templates, JSONPath queries, expressions; every step's first problem), and with `input`
    its first steps rendered. Valid: the resolved order by level. Nothing is stored."""
    checked = container.workflows.definitions.validate(body.definition, body.input)
    if not checked.valid:
        errors = [{"field": e.field, "message": e.message} for e in checked.input_problems]
        errors.extend({"field": _in_definition(e.field), "message": e.message}
                      for e in checked.problems)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(422, "Invalid definition", detail, errors=errors)
    definition = checked.definition
    assert definition is not None  # no problem: parsed
    level = {step: n for n, steps in enumerate(definition.levels) for step in steps}
    return WorkflowValidation(
        valid=True,
        name=definition.name,
        step_count=len(definition.steps),
        levels=[list(steps) for steps in definition.levels],
        order=list(definition.order),
        steps={
            step.id: StepPlan(needs=list(step.needs), level=level[step.id])
            for step in definition.steps
        },
    )
