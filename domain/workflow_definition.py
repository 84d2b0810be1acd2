"""A workflow definition: declarative JSON parsed and checked into frozen dataclasses.

    {"name": "charge-customer", "on_failure": "fail_fast", "input": {...},
     "steps": [{"id": "auth", "needs": [], "when": "...", "request": {...},
                "success": "status < 300", "retry_policy": {...}, "timeout_seconds": 30,
                "outputs": {"token": "$.body.token"}, "on_failure": "continue",
                "compensate": {"request": {...}, "retry_policy": {...}}}]}

Every error is an ``InvalidRequestError`` naming the step and field: ``steps[charge].needs``
once the step's id is known, ``steps[1].id`` before. ``input`` holds the run's default input
(a run's own input is laid over it). A step's ``timeout_seconds`` bounds the whole step
(every attempt and the waits between them); ``request.timeout_seconds`` bounds one attempt.
``compensate`` may also be written as the request itself (``{"method": ..., "url": ...}``).
A step's templates and expressions see only the steps it needs, directly or through others
(its compensation also sees the step itself).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType
from typing import Any

from jsonpath_rfc9535 import JSONPathQuery

from domain.errors import InvalidRequestError
from domain.retry_policy import MAX_DELAY_SECONDS, RetryPolicy
from domain.text import check_text
from domain.workflow_expressions import Expression, parse_expression
from domain.workflow_graph import ancestors, find_cycle
from domain.workflow_outputs import compile_query
from domain.workflow_paths import RESPONSE_ROOTS, RUN_ROOTS, Scope
from domain.workflow_step_request import StepRequest, parse_step_request
from domain.workflow_templates import check_json_value

DEFAULT_MAX_STEPS = 100
HARD_MAX_STEPS = 250
MAX_OUTPUTS = 32  # per step
MAX_NEEDS = HARD_MAX_STEPS
STEP_ID = re.compile(r"[a-z][a-z0-9_-]{0,62}")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_TOP = ("name", "on_failure", "input", "steps")
_STEP = (
    "id", "needs", "when", "request", "success", "retry_policy", "timeout_seconds", "outputs",
    "on_failure", "compensate",
)  # fmt: skip


class OnFailure(StrEnum):
    FAIL_FAST = "fail_fast"  # the run stops: nothing new starts; the run fails
    CONTINUE = "continue"  # steps needing it are skipped; other branches go on
    COMPENSATE = "compensate"  # the run stops, then succeeded steps are compensated


@dataclass(frozen=True)
class Compensation:
    request: StepRequest
    retry_policy: RetryPolicy | None = None


@dataclass(frozen=True)
class Step:
    id: str
    request: StepRequest
    on_failure: OnFailure  # the step's own, or the run's default
    needs: tuple[str, ...] = ()
    when: Expression | None = None
    success: Expression | None = None  # None: a 2xx status succeeds, as for a call
    retry_policy: RetryPolicy | None = None
    timeout_seconds: float | None = None
    outputs: Mapping[str, JSONPathQuery] = field(default_factory=dict)
    compensate: Compensation | None = None


@dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    on_failure: OnFailure
    input: Mapping[str, Any]
    steps: tuple[Step, ...]

    def step(self, step_id: str) -> Step:
        return self._by_id[step_id]

    @cached_property
    def needs(self) -> Mapping[str, tuple[str, ...]]:
        """Each step's needs, in the order the steps are declared."""
        return MappingProxyType({step.id: step.needs for step in self.steps})

    @cached_property
    def _by_id(self) -> Mapping[str, Step]:
        return MappingProxyType({step.id: step for step in self.steps})


def parse_definition(values: object, max_steps: int = DEFAULT_MAX_STEPS) -> WorkflowDefinition:
    """The checked definition; ``max_steps`` is the deployment's limit (at most 250)."""
    if not 1 <= max_steps <= HARD_MAX_STEPS:
        raise ValueError(f"max_steps must be between 1 and {HARD_MAX_STEPS}")
    if not isinstance(values, Mapping):
        raise InvalidRequestError("definition", "must be an object")
    _known(values, _TOP, "")
    name = _name(values.get("name"))
    on_failure = _on_failure(values.get("on_failure", OnFailure.FAIL_FAST), "on_failure")
    input_values = _input(values.get("input", {}))
    raw_steps = _raw_steps(values.get("steps"), max_steps)
    needs = _needs(raw_steps)
    outputs = {step_id: _output_names(raw, step_id) for step_id, raw in raw_steps.items()}
    seen = ancestors(needs)
    steps = tuple(
        _step(raw, step_id, needs[step_id], on_failure, _visible(seen[step_id], outputs), outputs)
        for step_id, raw in raw_steps.items()
    )
    return WorkflowDefinition(name, on_failure, MappingProxyType(input_values), steps)


def _name(name: object) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidRequestError(
            "name", "is required: 1 to 128 letters, digits, '_', '.' or '-' (not first)"
        )
    return name


def _on_failure(value: object, field_name: str) -> OnFailure:
    if value not in {mode.value for mode in OnFailure}:
        raise InvalidRequestError(field_name, f"must be one of {[m.value for m in OnFailure]}")
    return OnFailure(str(value))


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
        _known(raw, _STEP, f"steps[{step_id}].")
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
                raise InvalidRequestError(field_name, f"unknown step {needed[:63]!r}")
        if len(set(value)) != len(value):
            raise InvalidRequestError(field_name, "names a step more than once")
        needs[step_id] = tuple(value)
    cycle = find_cycle(needs)
    if cycle is not None:
        raise InvalidRequestError(
            f"steps[{cycle[0]}].needs", f"the steps' needs form a cycle: {' -> '.join(cycle)}"
        )
    return needs


def _output_names(raw: Mapping[str, Any], step_id: str) -> frozenset[str]:
    outputs = raw.get("outputs", {})
    field_name = f"steps[{step_id}].outputs"
    if not isinstance(outputs, Mapping):
        raise InvalidRequestError(field_name, "must be an object of name: JSONPath query")
    if len(outputs) > MAX_OUTPUTS:
        raise InvalidRequestError(field_name, f"at most {MAX_OUTPUTS} outputs ({len(outputs)})")
    for name in outputs:
        if not isinstance(name, str) or not OUTPUT_NAME.fullmatch(name):
            raise InvalidRequestError(
                field_name, "output names are 1 to 63 letters, digits or '_', not a digit first"
            )
    return frozenset(outputs)


def _visible(steps: frozenset[str], outputs: Mapping[str, frozenset[str]]) -> dict[str, Any]:
    return {step_id: outputs[step_id] for step_id in steps}


def _step(
    raw: Mapping[str, Any],
    step_id: str,
    needs: tuple[str, ...],
    run_on_failure: OnFailure,
    visible: dict[str, frozenset[str]],
    outputs: Mapping[str, frozenset[str]],
) -> Step:
    prefix = f"steps[{step_id}]"
    run_scope = Scope(RUN_ROOTS, visible)
    response_scope = Scope(RUN_ROOTS | RESPONSE_ROOTS, visible)
    own_scope = Scope(RUN_ROOTS, {**visible, step_id: outputs[step_id]})
    if "request" not in raw:
        raise InvalidRequestError(f"{prefix}.request", "is required")
    return Step(
        id=step_id,
        request=parse_step_request(raw["request"], f"{prefix}.request", run_scope),
        on_failure=_on_failure(raw.get("on_failure", run_on_failure), f"{prefix}.on_failure"),
        needs=needs,
        when=_expression(raw, "when", prefix, run_scope),
        success=_expression(raw, "success", prefix, response_scope),
        retry_policy=_retry_policy(raw.get("retry_policy"), f"{prefix}.retry_policy"),
        timeout_seconds=_timeout(raw.get("timeout_seconds"), f"{prefix}.timeout_seconds"),
        outputs=MappingProxyType(
            {
                name: compile_query(query, f"{prefix}.outputs.{name}")
                for name, query in raw.get("outputs", {}).items()
            }
        ),
        compensate=_compensation(raw.get("compensate"), f"{prefix}.compensate", own_scope),
    )


def _expression(raw: Mapping[str, Any], name: str, prefix: str, scope: Scope) -> Expression | None:
    if name not in raw:
        return None
    return parse_expression(raw[name], f"{prefix}.{name}", scope)


def _retry_policy(value: object, field_name: str) -> RetryPolicy | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidRequestError(field_name, "must be an object")
    try:
        return RetryPolicy.from_dict(dict(value))
    except InvalidRequestError as error:  # its field is "retry_policy.<name>"
        prefix = field_name.removesuffix("retry_policy")
        raise InvalidRequestError(f"{prefix}{error.field}", error.message) from None
    except (TypeError, ValueError, OverflowError):  # an unknown key, a value of a wrong type
        raise InvalidRequestError(field_name, "is not a valid retry policy") from None


def _timeout(value: object, field_name: str) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 1 <= value <= MAX_DELAY_SECONDS
    ):
        raise InvalidRequestError(
            field_name, f"must be a number of seconds from 1 to {MAX_DELAY_SECONDS:.0f}"
        )
    return float(value)


def _compensation(value: object, field_name: str, scope: Scope) -> Compensation | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidRequestError(field_name, "must be an object (a request)")
    if "request" not in value:  # the short form: the request itself
        return Compensation(parse_step_request(value, field_name, scope))
    _known(value, ("request", "retry_policy"), f"{field_name}.")
    return Compensation(
        parse_step_request(value["request"], f"{field_name}.request", scope),
        _retry_policy(value.get("retry_policy"), f"{field_name}.retry_policy"),
    )


def _known(values: Mapping[Any, Any], names: tuple[str, ...], prefix: str) -> None:
    for name in values:
        if name not in names:
            shown = name[:64] if isinstance(name, str) else repr(name)[:64]
            check_text(prefix or "definition", shown)
            raise InvalidRequestError(f"{prefix}{shown}", "unknown field")
