"""Dotted look-ups (``input.key``, ``steps.auth.outputs.token``, ``body.items.0``): which
ones a field may use, and their values in an evaluation context.

A context is a plain mapping built by ``evaluation_context``::

    {"input": {...}, "run": {"id": ..., "name": ...},
     "steps": {"auth": {"state": "succeeded", "status": 200, "outputs": {...}}},
     "status": 201, "headers": {...lower-cased names...}, "body": ...}   # a step's response

A step's fields see only the steps they (transitively) need, so a run's values are settled
before they are read and a replay reads the same ones.

Secret values (input keys a definition lists in ``secret_input``, outputs marked
``secret``) are in a context sealed (``Sealed``): a look-up of one is refused when the
definition is checked unless the field may hold secrets (a secret header:
``Scope.secrets_allowed``), and at render time only a ``reveal`` opens it.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from domain.errors import InvalidRequestError
from domain.workflow_tokens import shown

STEP_FIELDS = frozenset({"outputs", "status", "state"})
RUN_FIELDS = frozenset({"id", "name"})
RESPONSE_ROOTS = frozenset({"status", "headers", "body"})
RUN_ROOTS = frozenset({"input", "run", "steps"})


class _Missing:
    """A look-up that found nothing (``null`` in an expression; an error in a template
    unless ``default`` gives a value)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


@dataclass(frozen=True)
class Unavailable:
    """A value that exists but may not be used (an output truncated when stored)."""

    reason: str


@dataclass(frozen=True)
class Sealed:
    """A secret value in a context: its JSON text sealed (``text``), and the rest of the
    look-up to follow inside it once opened (``input.creds.user``: ``("user",)``)."""

    text: str
    path: tuple[str, ...] = ()


Reveal = Callable[[Sealed], object]  # a sealed value opened (its look-up followed)
SECRET_REFUSED = "is a secret value: only a secret header may use it"


@dataclass(frozen=True)
class SecretPaths:
    """Which values of a run are secret: input keys, and outputs by step."""

    input: frozenset[str] = frozenset()
    outputs: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def reads_secret(self, path: Sequence[str]) -> bool:
        """Does the look-up read a secret value (or an object holding one)?"""
        if path[0] == "input":
            return bool(self.input) if len(path) == 1 else path[1] in self.input
        if path[0] == "steps" and len(path) >= 3 and path[2] == "outputs":
            secret = self.outputs.get(path[1], frozenset())
            return bool(secret) if len(path) == 3 else path[3] in secret
        return False


@dataclass(frozen=True)
class Scope:
    """What a field may look up: its roots, the steps it sees with their outputs, which
    values are secret and whether this field may read them (a secret header)."""

    roots: frozenset[str]
    steps: Mapping[str, frozenset[str]] = field(default_factory=dict)
    secrets: SecretPaths = field(default_factory=SecretPaths)
    secrets_allowed: bool = False


def check_path(path: Sequence[str], scope: Scope, field_name: str, position: int) -> None:
    """Raise ``InvalidRequestError`` when ``path`` names something ``scope`` does not hold."""
    where = f"at position {position}"
    root = path[0]
    if root not in scope.roots:
        raise InvalidRequestError(
            field_name,
            f"unknown name {shown(root)} {where} (known: {', '.join(sorted(scope.roots))})",
        )
    if root == "run" and (len(path) != 2 or path[1] not in RUN_FIELDS):
        raise InvalidRequestError(field_name, f"'run' has only id and name {where}")
    if root == "steps":
        _check_step_path(path, scope, field_name, where)
    if scope.secrets.reads_secret(path):
        _check_secret_path(path, scope, field_name, where)


def _check_step_path(path: Sequence[str], scope: Scope, field_name: str, where: str) -> None:
    if len(path) < 3 or path[2] not in STEP_FIELDS:
        raise InvalidRequestError(
            field_name,
            f"use steps.<id>.outputs.<name>, steps.<id>.status or steps.<id>.state {where}",
        )
    step = path[1]
    if step not in scope.steps:
        raise InvalidRequestError(
            field_name,
            f"step {shown(step)} is not a step this one needs (directly or through others) {where}",
        )
    if path[2] != "outputs" and len(path) > 3:
        raise InvalidRequestError(field_name, f"steps.<id>.{path[2]} has no fields {where}")
    if path[2] == "outputs" and len(path) > 3 and path[3] not in scope.steps[step]:
        raise InvalidRequestError(
            field_name, f"step {shown(step)} has no output {shown(path[3])} {where}"
        )


def _check_secret_path(path: Sequence[str], scope: Scope, field_name: str, where: str) -> None:
    """A look-up of a secret value: only in a field that may hold one, and by name (not the
    object holding it: ``input``, ``steps.<id>.outputs``)."""
    text = ".".join(path)
    if not scope.secrets_allowed:
        raise InvalidRequestError(field_name, f"{text} {SECRET_REFUSED} {where}")
    if len(path) == (1 if path[0] == "input" else 3):
        raise InvalidRequestError(
            field_name, f"{text} holds secret values: look each up by name {where}"
        )


def resolve(
    context: Mapping[str, object], path: Sequence[str], reveal: Reveal | None = None
) -> object:
    """The value at ``path``, ``MISSING`` when there is none, or an ``Unavailable`` (also
    for an object holding one directly, as ``steps.<id>.outputs``). A secret value is
    opened by ``reveal``; without one it is ``Unavailable``."""
    value: object = context
    for depth, segment in enumerate(path):
        if isinstance(value, Unavailable):
            return value
        if isinstance(value, Sealed):
            sealed = Sealed(value.text, (*value.path, *path[depth:]))
            return Unavailable(SECRET_REFUSED) if reveal is None else reveal(sealed)
        key = segment.lower() if depth == 1 and path[0] == "headers" else segment
        if isinstance(value, Mapping):
            value = value.get(key, MISSING)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    if isinstance(value, Sealed):
        return Unavailable(SECRET_REFUSED) if reveal is None else reveal(value)
    if isinstance(value, Mapping):  # a step's outputs together: one may be unusable
        for item in value.values():
            if isinstance(item, Unavailable):
                return item
            if isinstance(item, Sealed):
                return Unavailable("holds secret values: look each up by name")
    return value


def evaluation_context(
    *,
    input_values: Mapping[str, object],
    run_id: str,
    run_name: str,
    steps: Mapping[str, Mapping[str, object]],
    response: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """A context for templates and expressions; ``response`` (status, headers, body) for a
    step's ``success``. Header names are lower-cased (looked up case-insensitively)."""
    context: dict[str, object] = {
        "input": dict(input_values),
        "run": {"id": run_id, "name": run_name},
        "steps": {step: dict(values) for step, values in steps.items()},
    }
    if response is not None:
        headers = response.get("headers")
        headers = headers if isinstance(headers, Mapping) else {}
        context["status"] = response.get("status")
        context["headers"] = {str(name).lower(): value for name, value in headers.items()}
        context["body"] = response.get("body")
    return context
