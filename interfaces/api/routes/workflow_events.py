"""`GET /v1/workflows/runs/{run_id}/events`: a run's history, its events with each step's
attempts.

The events are the run's own, as recorded (``audit.public``: type, version, timestamps, the
payload with secrets redacted, as a call's history shows them), a page at a time by version
(``after``, ``limit``), oldest first. Each page also carries the attempts of the calls its
events ordered (``StepStarted``, ``CompensationStarted``), grouped by step: rows of the
``executions`` read model (``ExecutionSummary``, as ``GET /v1/executions``), read once that
model has folded the run's newest event (read-your-writes, bounded: ``attempts_meta.stale``
says if it had not): a call's attempts are recorded before the run hears of its outcome, so
every attempt whose outcome the run knows is there.
So every call's attempts are on exactly one page, and a page's size is bounded: at most
``limit`` calls, each with its newest ``ATTEMPTS_PER_CALL`` attempts.
"""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from application.audit import AuditTrail, EventPage, RecordedEvent, VersionPage
from interfaces.api.dependencies import AuditDep, ContainerDep, TenantDep
from interfaces.api.query_schemas import ExecutionSummary, ReadModelMeta
from interfaces.api.routes.audit import RecordedEventPublic, public
from interfaces.api.routes.queries import Limit, _meta
from projections.executions import executions_of_calls

router = APIRouter(prefix="/v1/workflows/runs", tags=["workflows"])
ATTEMPTS_PER_CALL = 50  # a retry policy's most; a call retried by hand beyond: its newest
MAX_VERSION = 2**31 - 1  # a version past any run's (and within the database's integers)
_ORDERS = {"StepStarted": "step", "CompensationStarted": "compensation"}


class StepCallAttempts(BaseModel):
    call_id: UUID = Field(description="The call: `GET /v1/service-calls/{id}`.")
    purpose: Literal["step", "compensation"]
    generation: int = Field(description="The step's generation that ordered it.")
    idempotency_key: str
    ordered_at: datetime = Field(description="When the run ordered the call.")
    attempts: list[ExecutionSummary] = Field(
        description=f"Its attempts so far, first first (at most its newest "
        f"{ATTEMPTS_PER_CALL}), as `GET /v1/executions` lists them."
    )


class WorkflowRunEvents(BaseModel):
    run_id: UUID
    items: list[RecordedEventPublic] = Field(
        description="The run's events in this page, oldest first, as recorded (secrets "
        "redacted)."
    )
    next_after: int | None = Field(
        description="More events follow: pass as `after` for the next page."
    )
    steps: dict[str, list[StepCallAttempts]] = Field(
        description="By step id: the calls this page's events ordered, with their attempts."
    )
    attempts_meta: ReadModelMeta | None = Field(
        description="How fresh the attempts are (the `executions` read model); null when "
        "this page ordered no call."
    )


@router.get("/{run_id}/events", response_model=WorkflowRunEvents)
def run_events(
    run_id: UUID,
    container: ContainerDep,
    audit: AuditDep,
    tenant: TenantDep,
    response: Response,
    after: Annotated[int, Query(ge=0, le=MAX_VERSION, description=(
        "The events after this version (the `next_after` of the page before); 0: from the "
        "first."
    ))] = 0,
    limit: Limit = 100,
) -> WorkflowRunEvents:
    """The run's events, oldest first, a page at a time, each with its type, version,
    timestamps and fields (secrets redacted as in the run's answer and a call's history);
    and, by step, the attempts of the calls those events ordered (from the `executions`
    read model, once it has folded the run's newest event: `attempts_meta`). Another
    tenant's run: 404."""
    run = container.workflows.get(tenant, run_id)  # 404: unknown, or not this tenant's
    page = audit.page(run.id, VersionPage(limit, after))
    orders = [(event, _ORDERS[event.type.partition(".")[2]]) for event in page.items
              if event.type.partition(".")[2] in _ORDERS]
    steps: dict[str, list[StepCallAttempts]] = {}
    meta = None
    if orders:
        call_ids = [UUID(str(event.payload["call_id"])) for event, _ in orders]
        newest = _newest_position(audit, run.id, page)
        with container.read_models.reading("executions", newest) as (curs, freshness):
            attempts = executions_of_calls(curs, tenant, call_ids, ATTEMPTS_PER_CALL)
        meta = _meta("executions", freshness, response)
        for (event, purpose), call_id in zip(orders, call_ids, strict=True):
            steps.setdefault(str(event.payload["step"]), []).append(
                _call(event, purpose, call_id, attempts.get(call_id, []))
            )
    items = [RecordedEventPublic.model_validate(public(e)) for e in page.items]
    return WorkflowRunEvents(run_id=run.id, items=items, next_after=page.next_cursor,
                             steps=steps, attempts_meta=meta)


def _newest_position(audit: AuditTrail, run_id: UUID, page: EventPage) -> int:
    """The log position of the run's newest event: every attempt whose outcome the run has
    recorded was recorded before it (the page's last, when the page reaches the end)."""
    if page.next_cursor is None:
        return page.items[-1].position
    return audit.page(run_id, VersionPage(1, newest_first=True)).items[0].position


def _call(
    event: RecordedEvent, purpose: str, call_id: UUID, attempts: list[dict[str, Any]]
) -> StepCallAttempts:
    payload = event.payload
    return StepCallAttempts.model_validate({
        "call_id": call_id,
        "purpose": purpose,
        "generation": payload.get("generation", 1),
        "idempotency_key": payload["idempotency_key"],
        "ordered_at": payload["started_at"],
        "attempts": attempts,
    })
