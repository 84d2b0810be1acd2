"""A run's secret values: input keys a definition lists in ``secret_input`` and outputs
marked ``secret``, sealed before any event records them.

A secret value is sealed as its compact JSON text (``enc:v1:...``: any JSON value may be
secret) by the application's secret box, which the aggregate is given (``Secrets``: the
domain holds no key). In a template context it is a ``workflow_paths.Sealed``: only a secret
header's template opens it (``revealer``), and the step's call seals that header's value
again. Everything shown (the API, the CLI) has every sealed value ``[REDACTED]``
(``redacted``).
"""

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from domain.errors import InvalidRequestError
from domain.redaction import REDACTED, is_sealed
from domain.workflow_paths import Reveal, Sealed, Unavailable, resolve

MAX_SECRET_INPUT = 64  # keys a definition may list in ``secret_input``
UNREADABLE = "a secret value could not be opened (sealed with another DUECALL_SECRET_KEY?)"


class Secrets(Protocol):
    """Seals values for the run's events and opens them to render (the secret box)."""

    def seal(self, plaintext: str) -> str: ...

    def open(self, sealed: str) -> str: ...


class _NoSecrets:
    """For a caller that has no secret box: any secret to seal or open is an error."""

    def seal(self, plaintext: str) -> str:
        raise RuntimeError("a secret value to seal, and no secret box given")

    def open(self, sealed: str) -> str:
        raise RuntimeError("a secret value to open, and no secret box given")


NO_SECRETS: Secrets = _NoSecrets()


def parse_secret_input(value: object, field: str = "secret_input") -> frozenset[str]:
    """The input keys listed secret: at most ``MAX_SECRET_INPUT`` names, each once."""
    if not isinstance(value, list) or not all(isinstance(key, str) for key in value):
        raise InvalidRequestError(field, "must be a list of input key names")
    if len(value) > MAX_SECRET_INPUT:
        raise InvalidRequestError(field, f"at most {MAX_SECRET_INPUT} keys ({len(value)})")
    if len(set(value)) != len(value):
        raise InvalidRequestError(field, "names a key more than once")
    for key in value:
        if not 1 <= len(key) <= 256 or not key.isprintable() or "." in key:
            raise InvalidRequestError(
                field, "keys are 1 to 256 printable characters, no '.' (a look-up's separator)"
            )
    return frozenset(value)


def with_secret_defaults(
    definition: dict[str, Any], change: Callable[[object], object]
) -> dict[str, Any]:
    """``definition`` (a copy of one not yet checked: its wrong shapes are left for its
    checks to name) with ``change`` applied to its ``input`` values of ``secret_input``
    keys: sealed before a run or a stored definition records them, opened to compare."""
    listed, values = definition.get("secret_input"), definition.get("input")
    if isinstance(listed, list) and isinstance(values, dict):
        keys = {key for key in listed if isinstance(key, str)}
        definition["input"] = {
            key: change(value) if key in keys else value for key, value in values.items()
        }
    return definition


def sealing(seal: Callable[[str], str]) -> Callable[[object], object]:
    """A secret value sealed, unless it is already (a stored definition's)."""
    return lambda value: value if is_sealed(value) else seal_value(value, seal)


def opening(open_: Callable[[str], str]) -> Callable[[object], object]:
    """A sealed secret value opened: the value as given."""
    return lambda value: (
        json.loads(open_(value)) if isinstance(value, str) and is_sealed(value) else value
    )


def seal_value(value: object, seal: Callable[[str], str]) -> str:
    """A JSON value sealed as its compact JSON text."""
    return seal(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def sealed_input(
    values: Mapping[str, Any], keys: frozenset[str], seal: Callable[[str], str]
) -> dict[str, Any]:
    """A copy of a run's input ``values`` with the values of ``keys`` sealed (one sealed
    already is kept: a schedule's template input, sealed when the schedule recorded it)."""
    once = sealing(seal)
    return {key: once(value) if key in keys else value for key, value in values.items()}


def secret_input_of(definition: Mapping[str, Any]) -> frozenset[str]:
    """The ``secret_input`` keys of a definition already checked."""
    return frozenset(key for key in definition.get("secret_input", []) if isinstance(key, str))


def in_context(values: Mapping[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    """Input values as templates read them: the sealed ones of ``keys`` as ``Sealed``."""
    return {
        key: Sealed(value) if key in keys and is_sealed(value) else value
        for key, value in values.items()
    }


def revealer(open_: Callable[[str], str]) -> Reveal:
    """Opens a ``Sealed`` value and follows the rest of its look-up; one that cannot be
    opened is ``Unavailable`` (the template's field is named in the error)."""

    def reveal(sealed: Sealed) -> object:
        try:
            value = json.loads(open_(sealed.text))
        except Exception:  # tampered with, another key, not JSON: never the value itself
            return Unavailable(UNREADABLE)
        return resolve({"value": value}, ("value", *sealed.path))

    return reveal


def redacted(value: Any) -> Any:
    """``value`` with every sealed string in it (at any depth) ``[REDACTED]``."""
    if is_sealed(value):
        return REDACTED
    if isinstance(value, Mapping):
        return {key: redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redacted(item) for item in value]
    return value
