"""A schedule's call template: what each fire submits, as a checked plain dict.

The shape of a service-call submission: ``{"request": {method, url, headers, body,
timeout_seconds, follow_redirects, secret_headers}, "retry_policy": {...} | None, "tags":
[...]}``; the body is the string to send (the API encodes a JSON body first, as for a call).
``RequestSpec`` and ``RetryPolicy`` check it, so a bad value is refused as a call's would be;
errors name the field under ``call.`` (``call.request.url``).
"""

from collections.abc import Callable, Mapping
from typing import Any

from domain.errors import InvalidRequestError
from domain.redaction import redact_headers
from domain.request import RequestSpec
from domain.retry_policy import RetryPolicy
from domain.text import check_text

PREFIX = "call"
MAX_TAGS = 50  # as a call's (interfaces.api.schemas)
MAX_TAG_LENGTH = 200
_REQUEST_TYPES: dict[str, tuple[type, ...]] = {
    "method": (str,),
    "url": (str,),
    "headers": (dict,),
    "body": (str, type(None)),
    "timeout_seconds": (int, float),
    "follow_redirects": (bool,),
    "secret_headers": (list, tuple),
}


def check_call_template(values: object) -> dict[str, Any]:
    """The template, checked and normalised (as recorded), or ``InvalidRequestError``."""
    if not isinstance(values, Mapping):
        raise InvalidRequestError(PREFIX, "must be an object")
    _known(values, ("request", "retry_policy", "tags"), PREFIX)
    request = _request(values.get("request"))
    retry = values.get("retry_policy")
    if retry is not None and not isinstance(retry, Mapping):
        raise InvalidRequestError(f"{PREFIX}.retry_policy", "must be an object")
    try:
        policy = None if retry is None else RetryPolicy.from_dict(dict(retry))
    except InvalidRequestError as error:
        raise InvalidRequestError(f"{PREFIX}.{error.field}", error.message) from None
    except TypeError:  # an unknown key, or a value of the wrong type
        raise InvalidRequestError(f"{PREFIX}.retry_policy", "is not a valid retry policy") from None
    return {
        "request": request.as_dict(),
        "retry_policy": None if policy is None else policy.as_dict(),
        "tags": _tags(values.get("tags", [])),
    }


def template_request(template: Mapping[str, Any]) -> RequestSpec:
    """The request a fire submits (from a checked template: not checked again)."""
    r = template["request"]
    return RequestSpec.restored(
        r["method"],
        r["url"],
        dict(r["headers"]),
        r["body"],
        r["timeout_seconds"],
        r["follow_redirects"],
        r["secret_headers"],
    )


def template_retry_policy(template: Mapping[str, Any]) -> RetryPolicy | None:
    retry = template.get("retry_policy")
    return None if retry is None else RetryPolicy.from_dict(retry)


def sealed_template(template: Mapping[str, Any], seal: Callable[[str], str]) -> dict[str, Any]:
    """The template with its secret header values sealed: only ciphertext is recorded."""
    return {**template, "request": template_request(template).sealed(seal).as_dict()}


def redacted_template(template: Mapping[str, Any]) -> dict[str, Any]:
    """The template to show: secret header values redacted."""
    request = dict(template["request"])
    request["headers"] = redact_headers(request["headers"], request["secret_headers"])
    return {**template, "request": request}


def _request(values: object) -> RequestSpec:
    field = f"{PREFIX}.request"
    if not isinstance(values, Mapping):
        raise InvalidRequestError(field, "must be an object with at least method and url")
    _known(values, tuple(_REQUEST_TYPES), field)
    for name in ("method", "url"):
        if name not in values:
            raise InvalidRequestError(f"{field}.{name}", "is required")
    for name, kinds in _REQUEST_TYPES.items():
        value = values.get(name)
        if name in values and (not isinstance(value, kinds) or _is_bool_number(name, value)):
            raise InvalidRequestError(f"{field}.{name}", f"must be {_type_name(kinds)}")
    headers = values.get("headers", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise InvalidRequestError(f"{field}.headers", "names and values must be strings")
    for name in ("method", "url"):
        check_text(f"{field}.{name}", values[name])
    try:
        return RequestSpec(
            values["method"],
            values["url"],
            dict(headers),
            values.get("body"),
            float(values.get("timeout_seconds", 30.0)),
            values.get("follow_redirects", False),
            tuple(values.get("secret_headers", ())),
        )
    except InvalidRequestError as error:
        raise InvalidRequestError(f"{PREFIX}.{error.field}", error.message) from None


def _tags(tags: object) -> list[str]:
    field = f"{PREFIX}.tags"
    if not isinstance(tags, list | tuple):
        raise InvalidRequestError(field, "must be a list of strings")
    if len(tags) > MAX_TAGS:
        raise InvalidRequestError(field, f"at most {MAX_TAGS} tags ({len(tags)} given)")
    for tag in tags:
        if not isinstance(tag, str) or len(tag) > MAX_TAG_LENGTH:
            raise InvalidRequestError(field, f"each at most {MAX_TAG_LENGTH} characters of text")
        check_text(field, tag)
    return list(tags)


def _known(values: Mapping[str, Any], names: tuple[str, ...], field: str) -> None:
    for name in values:
        if name not in names:
            raise InvalidRequestError(f"{field}.{name}", "unknown field")


def _is_bool_number(name: str, value: object) -> bool:
    return name == "timeout_seconds" and isinstance(value, bool)


def _type_name(kinds: tuple[type, ...]) -> str:
    names = {
        str: "a string",
        dict: "an object",
        bool: "true or false",
        int: "a number",
        float: "a number",
        list: "a list",
        tuple: "a list",
        type(None): "null",
    }
    return " or ".join(dict.fromkeys(names[kind] for kind in kinds))
