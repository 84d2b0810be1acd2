"""A dry run of a workflow definition: every problem a submit would meet, nothing recorded.

The definition is checked as a submit checks it (``checked_definition``: the graph's first
problem, or else each step's first: unknown ``needs``, cycles, templates, JSONPath queries,
expressions), each problem naming the step and field. Given an ``input``, the first level's
steps (those that need nothing, so read only the input and the run) also have their ``when``
evaluated and their request rendered with it, as the run's first ``advance`` would: a
template reading an input value that is not there is named too. Later steps read outputs no
dry run has.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from domain.errors import InvalidRequestError
from domain.request import DEFAULT_MAX_BODY_BYTES
from domain.workflow_definition import DEFAULT_MAX_STEPS, WorkflowDefinition, checked_definition
from domain.workflow_expressions import evaluate
from domain.workflow_paths import evaluation_context
from domain.workflow_run import json_copy, render_checked
from domain.workflow_templates import check_json_value

DRY_RUN_ID = str(UUID(int=0))  # ``run.id`` in a dry run's templates


@dataclass(frozen=True)
class DryRun:
    definition: WorkflowDefinition | None  # None: a problem was found in the definition
    problems: tuple[InvalidRequestError, ...]  # the definition's (fields named in it)
    input_problems: tuple[InvalidRequestError, ...] = ()  # the run input's (``input...``)

    @property
    def valid(self) -> bool:
        return not self.problems and not self.input_problems


def dry_run(
    values: object,
    input_values: object = None,
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> DryRun:
    """The definition checked (and its first steps rendered with ``input_values``)."""
    input_problems: list[InvalidRequestError] = []
    run_input: dict[str, Any] | None = None
    if input_values is not None:
        try:
            run_input = _checked_input(input_values)
        except InvalidRequestError as error:
            input_problems.append(error)
    definition, problems = checked_definition(values, max_steps)
    if definition is not None and run_input is not None:
        problems.extend(_first_steps(definition, run_input, max_body_bytes))
    return DryRun(definition, tuple(problems), tuple(input_problems))


def _checked_input(values: object) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise InvalidRequestError("input", "must be an object")
    run_input = json_copy(values, "input")
    check_json_value(run_input, "input")
    return run_input


def _first_steps(
    definition: WorkflowDefinition, run_input: Mapping[str, Any], max_body_bytes: int
) -> list[InvalidRequestError]:
    """Each first-level step's problem rendering its ``when`` and request with the input."""
    context = evaluation_context(
        input_values={**definition.input, **run_input},
        run_id=DRY_RUN_ID,
        run_name=definition.name,
        steps={},
    )
    problems = []
    for step_id in definition.levels[0]:
        step = definition.step(step_id)
        try:
            if step.when is not None and not evaluate(step.when, context):
                continue  # skipped: its request is never rendered
            render_checked(step.request, context, f"steps[{step_id}].request", max_body_bytes)
        except InvalidRequestError as error:
            problems.append(error)
    return problems
