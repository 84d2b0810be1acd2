"""A definition's literal secret header values, sealed before the run records it.

A step's (or its compensation's) header whose name is secret (``SENSITIVE_HEADERS`` or the
request's ``secret_headers``) and whose value is literal (no ``{{``) is sealed, as a
schedule's call template is: only ciphertext is recorded in the run's ``Created`` event, the
step's call carries it sealed, and the worker opens it to send. A templated value cannot be
sealed before it is rendered: its call seals it (its parts come from the run's input and
outputs, which are recorded as given). A stored definition's versions are recorded sealed
the same way; ``opened_definition`` gives its values back as given, to compare a definition
stored again with its newest version. The ``input`` defaults of its ``secret_input`` keys
are sealed (and opened) with them (``workflow_secret_values``).
"""

import copy
from collections.abc import Callable, Mapping
from typing import Any

from domain.redaction import is_sealed, secret_header_names
from domain.workflow_secret_values import opening, sealing, with_secret_defaults


def sealed_definition(
    definition: Mapping[str, Any], seal: Callable[[str], str]
) -> dict[str, Any]:
    """A copy of ``definition`` with its literal secret header values sealed; anything of
    the wrong shape is left for the definition's own checks to name."""
    values = _secret_values(
        definition, lambda value: value if "{{" in value or is_sealed(value) else seal(value)
    )
    return with_secret_defaults(values, sealing(seal))  # its secret_input defaults


def opened_definition(
    definition: Mapping[str, Any], open_value: Callable[[str], str]
) -> dict[str, Any]:
    """A copy of a recorded ``definition`` with its sealed secret header values opened: the
    definition as it was given (a stored definition's newest version compared with one
    given again)."""
    values = _secret_values(
        definition, lambda value: open_value(value) if is_sealed(value) else value
    )
    return with_secret_defaults(values, opening(open_value))


def seal_once(seal: Callable[[str], str]) -> Callable[[str], str]:
    """``seal`` for a value not sealed yet (a rendered request whose literal values the
    definition sealed)."""
    return lambda value: value if is_sealed(value) else seal(value)


def _secret_values(
    definition: Mapping[str, Any], change: Callable[[str], str]
) -> dict[str, Any]:
    """A copy of ``definition`` with ``change`` applied to each secret header's value (in
    the steps' requests and compensations)."""
    values: dict[str, Any] = copy.deepcopy(dict(definition))
    steps = values.get("steps")
    for step in steps if isinstance(steps, list) else ():
        if not isinstance(step, dict):
            continue
        _change(step.get("request"), change)
        compensate = step.get("compensate")
        if isinstance(compensate, dict):
            _change(compensate.get("request", compensate), change)
    return values


def _change(request: object, change: Callable[[str], str]) -> None:
    if not isinstance(request, dict):
        return
    headers, extra = request.get("headers"), request.get("secret_headers", [])
    if not isinstance(headers, dict) or not isinstance(extra, list):
        return
    names = secret_header_names(n for n in extra if isinstance(n, str))
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() in names and isinstance(value, str):
            headers[name] = change(value)
