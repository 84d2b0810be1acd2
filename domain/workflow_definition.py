"""A workflow definition: declarative JSON parsed and checked into frozen dataclasses.

    {"name": "charge-customer", "on_failure": "fail_fast", "input": {...},
     "steps": [{"id": "auth", "needs": [], "when": "...", "request": {...},
                "success": "status < 300", "retry_policy": {...}, "timeout_seconds": 30,
                "outputs": {"token": "$.body.token"}, "on_failure": "continue",
                "compensate": {"request": {...}, "retry_policy": {...}}}]}

Every error is an ``InvalidRequestError`` naming the step and field: ``steps[charge].needs``
once the step's id is known, ``steps[1].id`` before (a step's own fields: ``workflow_step``).
``input`` holds the run's default input, data rather than templates (a run's own input is
laid over it); ``secret_input`` lists its keys whose values are secret (as outputs marked
``secret``: sealed before a run records them, readable by secret headers only). The graph
is checked first (ids, needs, cycles, output names), then each
step; ``definition_problems`` reports every step's first problem (a dry run), where
``parse_definition`` stops at the first.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

from domain.errors import InvalidRequestError
from domain.workflow_graph import ancestors, find_cycle, levels, topological_order
from domain.workflow_paths import SecretPaths
from domain.workflow_secret_values import parse_secret_input
from domain.workflow_step import (
    FIELDS,
    OnFailure,
    Step,
    check_known,
    output_names,
    parse_on_failure,
    parse_step,
    secret_output_names,
)
from domain.workflow_templates import check_json_value
from domain.workflow_tokens import shown

DEFAULT_MAX_STEPS = 100
HARD_MAX_STEPS = 250
STEP_ID = re.compile(r"[a-z][a-z0-9_-]{0,62}")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_TOP = ("name", "on_failure", "input", "secret_input", "steps")


@dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    on_failure: OnFailure
    input: Mapping[str, Any]
    steps: tuple[Step, ...]
    secret_input: frozenset[str] = frozenset()  # input keys sealed before a run records them

    def step(self, step_id: str) -> Step:
        return self._by_id[step_id]

    @cached_property
    def needs(self) -> Mapping[str, tuple[str, ...]]:
        """Each step's needs, in the order the steps are declared."""
        return MappingProxyType({step.id: step.needs for step in self.steps})

    @cached_property
    def order(self) -> tuple[str, ...]:
        """Every step after those it needs; among free steps, the first declared first."""
        return topological_order(self.needs)

    @cached_property
    def levels(self) -> tuple[tuple[str, ...], ...]:
        """The steps by level (``workflow_graph.levels``): a step needs only steps of
        earlier levels, so those of one level may run side by side."""
        return levels(self.needs)

    @cached_property
    def _by_id(self) -> Mapping[str, Step]:
        return MappingProxyType({step.id: step for step in self.steps})


def parse_definition(values: object, max_steps: int = DEFAULT_MAX_STEPS) -> WorkflowDefinition:
    """The checked definition; ``max_steps`` is the deployment's limit (at most 250)."""
    definition, problems = _parse(values, max_steps)
    if problems:
        raise problems[0]
    assert definition is not None  # no problem: parsed
    return definition


def definition_problems(
    values: object, max_steps: int = DEFAULT_MAX_STEPS
) -> list[InvalidRequestError]:
    """Every problem found: the graph's first, or else each step's first (in order)."""
    return _parse(values, max_steps)[1]


def checked_definition(
    values: object, max_steps: int = DEFAULT_MAX_STEPS
) -> tuple[WorkflowDefinition | None, list[InvalidRequestError]]:
    """The definition and no problem, or None and every problem (``definition_problems``)."""
    return _parse(values, max_steps)


def _parse(
    values: object, max_steps: int
) -> tuple[WorkflowDefinition | None, list[InvalidRequestError]]:
    if not 1 <= max_steps <= HARD_MAX_STEPS:
        raise ValueError(f"max_steps must be between 1 and {HARD_MAX_STEPS}")
    try:
        name, on_failure, input_values, raw_steps, needs = _graph(values, max_steps)
        outputs = {step_id: output_names(raw, step_id) for step_id, raw in raw_steps.items()}
        assert isinstance(values, Mapping)  # _graph refused anything else
        secret_input = parse_secret_input(values.get("secret_input", []))
        secrets = SecretPaths(
            secret_input,
            {step_id: secret_output_names(raw, step_id) for step_id, raw in raw_steps.items()},
        )
    except InvalidRequestError as error:
        return None, [error]
    seen = ancestors(needs)
    steps: list[Step] = []
    problems: list[InvalidRequestError] = []
    for step_id, raw in raw_steps.items():
        visible = {other: outputs[other] for other in seen[step_id]}
        try:
            steps.append(
                parse_step(
                    raw, step_id, needs[step_id], on_failure, visible, outputs[step_id], secrets
                )
            )
        except InvalidRequestError as error:
            problems.append(error)
    if problems:
        return None, problems
    return WorkflowDefinition(
        name, on_failure, MappingProxyType(input_values), tuple(steps), secret_input
    ), []


def _graph(
    values: object, max_steps: int
) -> tuple[
    str, OnFailure, dict[str, Any], dict[str, Mapping[str, Any]], dict[str, tuple[str, ...]]
]:
    """The definition's top-level fields, its steps by id and their needs, checked."""
    if not isinstance(values, Mapping):
        raise InvalidRequestError("definition", "must be an object")
    check_known(values, _TOP, "")
    name = check_definition_name(values.get("name"))
    on_failure = parse_on_failure(values.get("on_failure", OnFailure.FAIL_FAST), "on_failure")
    input_values = _input(values.get("input", {}))
    raw_steps = _raw_steps(values.get("steps"), max_steps)
    return name, on_failure, input_values, raw_steps, _needs(raw_steps)


def check_definition_name(name: object, field: str = "name") -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidRequestError(
            field, "is required: 1 to 128 letters, digits, '_', '.' or '-' (not first)"
        )
    return name


def _input(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidRequestError("input", "must be an object")
    check_json_value(dict(value), "input")  # depth, size, text rules; strings are data
    return dict(value)


def _raw_steps(steps: object, max_steps: int) -> dict[str, Mapping[str, Any]]:
    """The steps by id (in order), ids checked and unique."""
    if not isinstance(steps, list) or not steps:
        raise InvalidRequestError("steps", "is required: a non-empty list of steps")
    if len(steps) > max_steps:
        raise InvalidRequestError("steps", f"at most {max_steps} steps ({len(steps)} given)")
    by_id: dict[str, Mapping[str, Any]] = {}
    for index, raw in enumerate(steps):
        if not isinstance(raw, Mapping):
            raise InvalidRequestError(f"steps[{index}]", "must be an object")
        step_id = raw.get("id")
        if not isinstance(step_id, str) or not STEP_ID.fullmatch(step_id):
            raise InvalidRequestError(
                f"steps[{index}].id",
                "is required: 1 to 63 lower-case letters, digits, '_' or '-', a letter first",
            )
        if step_id in by_id:
            raise InvalidRequestError(f"steps[{index}].id", f"duplicate step id {step_id!r}")
        check_known(raw, FIELDS, f"steps[{step_id}].")
        by_id[step_id] = raw
    return by_id


def _needs(steps: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    needs: dict[str, tuple[str, ...]] = {}
    for step_id, raw in steps.items():
        field_name = f"steps[{step_id}].needs"
        value = raw.get("needs", [])
        if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
            raise InvalidRequestError(field_name, "must be a list of step ids")
        for needed in value:
            if needed == step_id:
                raise InvalidRequestError(field_name, "a step cannot need itself")
            if needed not in steps:
                raise InvalidRequestError(field_name, f"unknown step {shown(needed)}")
        if len(set(value)) != len(value):
            raise InvalidRequestError(field_name, "names a step more than once")
        needs[step_id] = tuple(value)
    cycle = find_cycle(needs)
    if cycle is not None:
        raise InvalidRequestError(
            f"steps[{cycle[0]}].needs", f"the steps' needs form a cycle: {' -> '.join(cycle)}"
        )
    return needs
