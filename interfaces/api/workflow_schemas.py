"""Request and response models of the workflow run routes (``routes/workflows.py``).

The definition is the domain's to check (``domain.workflow_definition``: its steps, their
DAG, templates, expressions and queries; its 422 names the field, ``definition.steps[1].needs``
and the like): the schema only says it is a JSON object, as the run's input is. Their size is
bounded by the API's body limit (413) and, per field, by the domain. Unknown fields of the
bodies themselves are refused (422 naming them).
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from domain.errors import InvalidRequestError
from domain.workflow_run_status import RunStatus
from domain.workflow_stored_definition import MAX_VERSIONS
from interfaces.api.fields import IntegerOrNone, SafeText
from interfaces.api.patterns import WORKFLOW_NAME

MAX_REASON_LENGTH = 1000


class WorkflowRunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: dict[str, Any] | None = Field(
        default=None,
        examples=[{
            "name": "charge-customer",
            "steps": [
                {"id": "auth", "request": {"method": "POST", "url": "https://a.example/token"},
                 "outputs": {"token": {"path": "$.body.token", "secret": True}}},
                {"id": "charge", "needs": ["auth"],
                 "request": {"method": "POST", "url": "https://p.example/charges",
                             "headers": {"Authorization":
                                         "Bearer {{ steps.auth.outputs.token }}"}}},
            ],
        }],
        description="The workflow definition (docs/workflows.md): `name`, `steps` (each "
        "`id`, `request`, `needs`, `when`, `success`, `outputs`, `retry_policy`, "
        "`on_failure`, `compensate`, `timeout_seconds`), `input`, `secret_input`, "
        "`on_failure`. Checked "
        "whole by the domain; a refusal is a 422 naming the field (`definition.steps[1]...`). "
        "Either this or `definition_name`.",
    )
    definition_name: str | None = Field(
        default=None, max_length=128, pattern=WORKFLOW_NAME,
        description="Instead of `definition`: the name of a stored definition "
        "(`PUT /v1/workflows/definitions/{name}`) to run.",
    )
    definition_version: IntegerOrNone = Field(
        default=None, ge=1, le=MAX_VERSIONS,
        description="With `definition_name`: the version to run (default: the newest).",
    )
    input: dict[str, Any] | None = Field(
        default=None,
        description="The run's input, laid over the definition's `input` (`{{ input.* }}`).",
    )

    def stored(self) -> tuple[str, int | None] | None:
        """The stored definition to run, (name, version); None: ``definition`` is given.
        Exactly one of the two forms (else an error naming the field)."""
        if self.definition is not None:
            if self.definition_name is not None:
                raise InvalidRequestError(
                    "definition_name", "give either definition or definition_name, not both"
                )
            if self.definition_version is not None:
                raise InvalidRequestError("definition_version", "is given with definition_name")
            return None
        if self.definition_name is None:
            raise InvalidRequestError(
                "definition", "is required (or definition_name: a stored definition's)"
            )
        return self.definition_name, self.definition_version


class WorkflowCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: SafeText | None = Field(default=None, max_length=MAX_REASON_LENGTH)


class StepRerun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(
        default_factory=dict,
        description="Laid over the run's input for this step's new generation (recorded).",
    )


# -- answers ---------------------------------------------------------------------------------


class StepOutputPublic(BaseModel):
    value: Any = Field(
        description="The query's value (JSON); when `unusable`, the part kept (or null); "
        "`[REDACTED]` when `secret`."
    )
    size_bytes: int = Field(
        description="Of the whole value, as compact UTF-8 JSON (a secret's: sealed)."
    )
    sha256: str = Field(description="Of the whole value (empty for a secret).")
    unusable: str | None = Field(description="Why it cannot be used (truncated, unstorable).")
    secret: bool = Field(
        default=False, description="Marked secret: recorded sealed, never shown."
    )


class StepRunPublic(BaseModel):
    state: str = Field(
        description="`pending`, `running`, `succeeded`, `failed`, `skipped` or `cancelled`."
    )
    generation: int = Field(description="1, then one more for each retry or re-run.")
    call_id: UUID | None = Field(description="Its call: `GET /v1/service-calls/{id}`.")
    idempotency_key: str | None = Field(
        description="`wf:<run id>:<step id>`, `:r<generation>` from the 2nd generation."
    )
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    status_code: int | None = Field(description="Its call's final response status.")
    reason: str | None = Field(description="Why skipped, failed or cancelled.")
    outputs: dict[str, StepOutputPublic] = Field(
        description="Its outputs (together at most 256 KiB; a larger value is kept truncated)."
    )
    input_override: dict[str, Any] | None = Field(description="A re-run's edited input.")


class WorkflowRunCounts(BaseModel):
    total: int
    succeeded: int
    failed: int
    skipped: int
    cancelled: int


class WorkflowRunPublic(BaseModel):
    id: UUID
    tenant_id: str
    name: str
    definition_name: str | None = Field(
        description="The stored definition it ran (its `name`); null: given inline."
    )
    definition_version: int | None = Field(description="A stored definition's version.")
    origin: str | None = Field(
        default=None, description="`schedule:<id>`: a schedule's fire started it; null: a submit."
    )
    idempotency_key: str | None = Field(
        default=None, description="A schedule's fire's: `sched:<schedule id>:<nominal UTC>`."
    )
    status: RunStatus = Field(
        description="`pending`, `running`, `paused`, `compensating`, `succeeded`, `failed` "
        "or `cancelled`."
    )
    input: dict[str, Any] | None = Field(
        description="The run's input as submitted (`secret_input` values `[REDACTED]`)."
    )
    halted_by: str | None = Field(description="The step whose failure halted the run.")
    compensation: str | None = Field(description="`compensated` or `compensation_failed`.")
    cancel_reason: str | None
    steps: dict[str, StepRunPublic] = Field(description="Each step's latest generation.")
    compensations: dict[str, StepRunPublic] = Field(
        description="The compensations run (by step id)."
    )
    counts: WorkflowRunCounts
    duration_seconds: float | None = Field(
        description="From the first step ordered to the run's end."
    )
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


def run_public(described: dict[str, Any]) -> WorkflowRunPublic:
    """``WorkflowRun.describe()`` as the API answers it: each step with its duration."""
    durations = described["step_durations"]
    steps = {step: {**values, "duration_seconds": durations.get(step)}
             for step, values in described["steps"].items()}
    compensations = {step: {**values, "duration_seconds": _duration(values)}
                     for step, values in described["compensations"].items()}
    return WorkflowRunPublic.model_validate(
        {**described, "steps": steps, "compensations": compensations}
    )


def _duration(values: dict[str, Any]) -> float | None:
    started, finished = values["started_at"], values["finished_at"]
    if started is None or finished is None:
        return None
    return float((finished - started).total_seconds())
