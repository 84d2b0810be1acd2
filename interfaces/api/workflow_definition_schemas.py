"""Request and response models of the stored workflow definition routes and of validate
(``routes/workflow_definitions.py``).

As for a run, the definition is the domain's to check (``domain.workflow_definition``); the
schema says only that it is a JSON object, bounded by the API's body limit (413) and, per
field, by the domain.
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from interfaces.api.patterns import WORKFLOW_NAME
from interfaces.api.query_schemas import ReadModelMeta

DefinitionName = Annotated[str, Path(
    max_length=128, pattern=WORKFLOW_NAME,
    description="1 to 128 letters, digits, `_`, `.` or `-`, a letter or digit first.",
)]


class WorkflowDefinitionPublic(BaseModel):
    name: str
    version: int = Field(description="1, 2, 3, ...: each stored change is a new version.")
    steps: int = Field(description="How many steps it has.")
    definition: dict[str, Any] = Field(
        description="As stored: checked, `name` filled in, literal secret header values "
        "sealed (`enc:v1:...`)."
    )
    created_at: datetime = Field(description="When this version was stored.")


class WorkflowDefinitionSummary(BaseModel):
    name: str
    version: int = Field(description="The newest version.")
    steps: int = Field(description="The newest version's step count.")
    created_at: datetime = Field(description="When version 1 was stored.")
    updated_at: datetime = Field(description="When the newest version was stored.")


class WorkflowDefinitionPage(BaseModel):
    items: list[WorkflowDefinitionSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    meta: ReadModelMeta


class WorkflowValidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: dict[str, Any] = Field(
        description="The workflow definition to check (docs/workflows.md); nothing is stored."
    )
    input: dict[str, Any] | None = Field(
        default=None,
        description="A run's input: the first steps' `when` and requests are then rendered "
        "with it, as a run's would be.",
    )


class StepPlan(BaseModel):
    needs: list[str]
    level: int = Field(description="Its level in `levels` (0: needs nothing).")


class WorkflowValidation(BaseModel):
    valid: bool = Field(description="Always true here: a definition with problems is a 422.")
    name: str
    step_count: int
    levels: list[list[str]] = Field(
        description="The resolved order by level: a step needs only steps of earlier levels "
        "(one of the level just before), so the steps of one level may run in parallel."
    )
    order: list[str] = Field(description="One by one: each step after the steps it needs.")
    steps: dict[str, StepPlan]
