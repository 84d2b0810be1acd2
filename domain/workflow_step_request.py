"""A step's request (or its compensation's): templated, checked twice.

Before rendering, ``parse_step_request`` checks what does not depend on a run: the method,
timeout, redirects, secret header names, header names (and values as written), the URL
when it holds no ``{{ ... }}``, and every template. At render time ``render_request``
builds a ``RequestSpec``, which checks the rendered URL, headers and body as a call's; the
caller checks the body's size against the deployment's limit (``check_body_size``) as for
a call. A body given as JSON is sent as compact JSON with ``Content-Type:
application/json`` unless a Content-Type header is given, as a call's JSON body is.

A secret value (``workflow_paths.Sealed``) may be read only by a secret header's template
(a name in ``SENSITIVE_HEADERS`` or the request's ``secret_headers``): anywhere else the
definition is refused, since it would be recorded in clear with the call's request.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from domain.errors import InvalidRequestError
from domain.headers import check_headers
from domain.redaction import secret_header_names
from domain.request import DEFAULT_TIMEOUT_SECONDS, MAX_URL_LENGTH, RequestSpec
from domain.workflow_paths import Reveal, Scope
from domain.workflow_templates import (
    JsonTemplate,
    Template,
    parse_json_template,
    parse_template,
    render_json,
    render_text,
)

_PLACEHOLDER_URL = "https://placeholder.invalid/"  # stands in for a templated URL in checks
_TYPES: dict[str, tuple[type, ...]] = {
    "method": (str,),
    "url": (str,),
    "headers": (dict,),
    "timeout_seconds": (int, float),
    "follow_redirects": (bool,),
    "secret_headers": (list,),
}
_KNOWN = (*_TYPES, "body")


@dataclass(frozen=True)
class StepRequest:
    method: str
    url: Template
    headers: tuple[tuple[str, Template], ...]
    body: JsonTemplate  # a Template for text, a JSON template for JSON, None for none
    body_is_json: bool
    timeout_seconds: float
    follow_redirects: bool
    secret_headers: tuple[str, ...]


def parse_step_request(values: object, field: str, scope: Scope) -> StepRequest:
    """The request, checked as far as it can be before a run (errors under ``field``)."""
    if not isinstance(values, Mapping):
        raise InvalidRequestError(field, "must be an object with at least method and url")
    _check_shape(values, field)
    headers: dict[str, str] = values.get("headers", {})
    url: str = values["url"]
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRequestError(f"{field}.url", f"at most {MAX_URL_LENGTH} characters")
    url_template = parse_template(url, f"{field}.url", scope)
    try:  # the parts that are not templated, checked as a call's
        check_headers(headers)
        probe = RequestSpec(
            values["method"],
            url if url_template.is_literal else _PLACEHOLDER_URL,
            timeout_seconds=float(values.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)),
            follow_redirects=values.get("follow_redirects", False),
            secret_headers=tuple(values.get("secret_headers", ())),
        )
    except InvalidRequestError as error:
        raise _under(field, error) from None
    except OverflowError:  # an integer too large for a float
        raise InvalidRequestError(f"{field}.timeout_seconds", "is out of range") from None
    literal = "".join(part for part in url_template.parts if isinstance(part, str))
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in literal):
        raise InvalidRequestError(f"{field}.url", "cannot contain whitespace or control characters")
    body = values.get("body")
    body_is_json = body is not None and not isinstance(body, str)
    secret_scope = replace(scope, secrets_allowed=True)  # a secret header's: sealed on its call
    return StepRequest(
        probe.method,
        url_template,
        tuple(
            (name, parse_template(
                value,
                f"{field}.headers.{name}",
                secret_scope if name.lower() in probe.secret_names else scope,
            ))
            for name, value in headers.items()
        ),
        parse_json_template(body, f"{field}.body", scope),
        body_is_json,
        probe.timeout_seconds,
        probe.follow_redirects,
        probe.secret_headers,
    )


def render_request(
    request: StepRequest,
    context: Mapping[str, object],
    field: str,
    reveal: Reveal | None = None,
) -> RequestSpec:
    """The request to send in this run, checked as a call's (errors under ``field``);
    ``reveal`` opens the secret values its secret headers read (in clear here only: the
    caller seals those headers' values on the call)."""
    secret = secret_header_names(request.secret_headers)
    headers = {
        name: render_text(value, context, reveal if name.lower() in secret else None)
        for name, value in request.headers
    }
    body: str | None
    if request.body_is_json:
        try:
            body = json.dumps(render_json(request.body, context), separators=(",", ":"))
        except ValueError:  # NaN or Infinity read from a response
            raise InvalidRequestError(f"{field}.body", "is not JSON (NaN or Infinity)") from None
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
    else:  # text: a look-up's value is written as text (true, {"a":1}), never Python's repr
        body = render_text(request.body, context) if isinstance(request.body, Template) else None
    try:
        return RequestSpec(
            request.method,
            render_text(request.url, context),
            headers,
            body,
            request.timeout_seconds,
            request.follow_redirects,
            request.secret_headers,
        )
    except InvalidRequestError as error:
        raise _under(field, error) from None


def _check_shape(values: Mapping[str, Any], field: str) -> None:
    for name in values:
        if name not in _KNOWN:
            raise InvalidRequestError(f"{field}.{name}", "unknown field")
    for name in ("method", "url"):
        if name not in values:
            raise InvalidRequestError(f"{field}.{name}", "is required")
    for name, kinds in _TYPES.items():
        value = values.get(name)
        wrong = not isinstance(value, kinds) or (
            name == "timeout_seconds" and isinstance(value, bool)
        )
        if name in values and wrong:
            raise InvalidRequestError(f"{field}.{name}", f"must be of type {kinds[0].__name__}")
    headers = values.get("headers", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise InvalidRequestError(f"{field}.headers", "names and values must be strings")


def _under(field: str, error: InvalidRequestError) -> InvalidRequestError:
    """A ``RequestSpec`` error (``request.url``) named under ``field`` (``steps[a].request``);
    a template's error names its own field already."""
    if error.field.startswith(field):
        return error
    name = error.field.removeprefix("request")
    return InvalidRequestError(f"{field}{name}", error.message)
