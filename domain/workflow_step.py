"""One step of a workflow definition: its fields parsed and checked.

Errors name the step and field (``steps[charge].retry_policy.max_attempts``). A step's
``timeout_seconds`` bounds the whole step (every attempt and the waits between them);
``request.timeout_seconds`` bounds one attempt. ``compensate`` may also be written as the
request itself (``{"method": ..., "url": ...}``). A step's templates and expressions see
only the steps it needs, directly or through others; its compensation also sees the step.
An output is ``"name": "$.query"``, or ``{"path": "$.query", "secret": true}`` for a secret
one (sealed before the run records it; only a secret header may read it).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from jsonpath_rfc9535 import JSONPathQuery

from domain.errors import InvalidRequestError
from domain.retry_policy import MAX_DELAY_SECONDS, RetryPolicy
from domain.text import check_text
from domain.workflow_expressions import Expression, parse_expression
from domain.workflow_outputs import compile_query
from domain.workflow_paths import RESPONSE_ROOTS, RUN_ROOTS, Scope, SecretPaths
from domain.workflow_step_request import StepRequest, parse_step_request

MAX_OUTPUTS = 32  # per step
OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
FIELDS = (
    "id", "needs", "when", "request", "success", "retry_policy", "timeout_seconds", "outputs",
    "on_failure", "compensate",
)  # fmt: skip


class OnFailure(StrEnum):
    FAIL_FAST = "fail_fast"  # the run stops: nothing new starts; the run fails
    CONTINUE = "continue"  # steps needing it are skipped; others go on; the run fails at the end
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
    secret_outputs: frozenset[str] = frozenset()  # sealed before the run records them


def parse_on_failure(value: object, field_name: str) -> OnFailure:
    if not isinstance(value, str) or value not in {mode.value for mode in OnFailure}:
        raise InvalidRequestError(field_name, f"must be one of {[m.value for m in OnFailure]}")
    return OnFailure(str(value))


def output_specs(raw: Mapping[str, Any], step_id: str) -> dict[str, tuple[object, bool]]:
    """Each output's query (unchecked) and whether it is secret: ``"name": "$.q"`` or
    ``"name": {"path": "$.q", "secret": true}``."""
    outputs = raw.get("outputs", {})
    field_name = f"steps[{step_id}].outputs"
    if not isinstance(outputs, Mapping):
        raise InvalidRequestError(field_name, "must be an object of name: JSONPath query")
    if len(outputs) > MAX_OUTPUTS:
        raise InvalidRequestError(field_name, f"at most {MAX_OUTPUTS} outputs ({len(outputs)})")
    specs: dict[str, tuple[object, bool]] = {}
    for name, spec in outputs.items():
        if not isinstance(name, str) or not OUTPUT_NAME.fullmatch(name):
            raise InvalidRequestError(
                field_name, "output names are 1 to 63 letters, digits or '_', not a digit first"
            )
        specs[name] = _output_spec(spec, f"{field_name}.{name}")
    return specs


def _output_spec(spec: object, field_name: str) -> tuple[object, bool]:
    if not isinstance(spec, Mapping):
        return spec, False  # a query, checked when compiled
    check_known(spec, ("path", "secret"), f"{field_name}.")
    secret = spec.get("secret", False)
    if not isinstance(secret, bool):
        raise InvalidRequestError(f"{field_name}.secret", "must be true or false")
    if "path" not in spec:
        raise InvalidRequestError(f"{field_name}.path", "is required: a JSONPath query")
    return spec["path"], secret


def output_names(raw: Mapping[str, Any], step_id: str) -> frozenset[str]:
    return frozenset(output_specs(raw, step_id))


def secret_output_names(raw: Mapping[str, Any], step_id: str) -> frozenset[str]:
    return frozenset(n for n, (_, secret) in output_specs(raw, step_id).items() if secret)


def parse_step(
    raw: Mapping[str, Any],
    step_id: str,
    needs: tuple[str, ...],
    run_on_failure: OnFailure,
    visible: Mapping[str, frozenset[str]],
    own_outputs: frozenset[str],
    secrets: SecretPaths | None = None,
) -> Step:
    """The step; ``visible``: the steps it needs (transitively), with their output names;
    ``secrets``: the run's secret values (a secret header's template alone may read one)."""
    prefix = f"steps[{step_id}]"
    secrets = secrets or SecretPaths()
    run_scope = Scope(RUN_ROOTS, visible, secrets)
    response_scope = Scope(RUN_ROOTS | RESPONSE_ROOTS, visible, secrets)
    own_scope = Scope(RUN_ROOTS, {**visible, step_id: own_outputs}, secrets)
    if "request" not in raw:
        raise InvalidRequestError(f"{prefix}.request", "is required")
    specs = output_specs(raw, step_id)
    return Step(
        id=step_id,
        request=parse_step_request(raw["request"], f"{prefix}.request", run_scope),
        on_failure=parse_on_failure(raw.get("on_failure", run_on_failure), f"{prefix}.on_failure"),
        needs=needs,
        when=_expression(raw, "when", prefix, run_scope),
        success=_expression(raw, "success", prefix, response_scope),
        retry_policy=_retry_policy(raw.get("retry_policy"), f"{prefix}.retry_policy"),
        timeout_seconds=_timeout(raw.get("timeout_seconds"), f"{prefix}.timeout_seconds"),
        outputs=MappingProxyType(
            {
                name: compile_query(query, _query_field(f"{prefix}.outputs.{name}", raw, name))
                for name, (query, _) in specs.items()
            }
        ),
        secret_outputs=frozenset(name for name, (_, secret) in specs.items() if secret),
        compensate=_compensation(raw.get("compensate"), f"{prefix}.compensate", own_scope),
    )


def _query_field(field_name: str, raw: Mapping[str, Any], name: str) -> str:
    """Where an output's query is written: the output, or its ``path``."""
    return f"{field_name}.path" if isinstance(raw["outputs"][name], Mapping) else field_name


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
    check_known(value, ("request", "retry_policy"), f"{field_name}.")
    return Compensation(
        parse_step_request(value["request"], f"{field_name}.request", scope),
        _retry_policy(value.get("retry_policy"), f"{field_name}.retry_policy"),
    )


def check_known(values: Mapping[Any, Any], names: tuple[str, ...], prefix: str) -> None:
    for name in values:
        if name not in names:
            shown = name[:64] if isinstance(name, str) else repr(name)[:64]
            check_text(prefix or "definition", shown)
            raise InvalidRequestError(f"{prefix}{shown}", "unknown field")
