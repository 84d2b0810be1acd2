"""The OpenAPI document states every problem+json answer, in one place.

A hook on ``app.openapi`` adds to each operation the errors it can answer, by what it has:
401 and 429 where it needs an API key (admin routes: 401 only, they are not rate limited),
404 where a path names a resource, 413 where it takes a body, 422 where it takes a body or
parameters, 409 for submits (Idempotency-Key), call lifecycle commands, circuit resets,
tenant creation, a schedule's commands (update and delete too) and a workflow run's
commands, 503 wherever the database is read; 400 where a body is taken (one that is not
UTF-8 cannot even be parsed). FastAPI's own 422 (``HTTPValidationError``) is replaced: what
is answered is problem+json. Optional parameters lose their ``null`` alternative: a query
string or header cannot carry a JSON null (leaving the parameter out is how it is said).
"""

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from interfaces.api.problems import MEDIA_TYPE, ProblemBody

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_NO_DATABASE = {"/healthz", "/metrics"}
_CONFLICTS = re.compile(
    r"^/v1/service-calls(:batch)?$"
    r"|^/v1/service-calls/\{[^/]+\}/(cancel|pause|resume|retry)$"
    r"|^/v1/circuits/\{[^/]+\}/reset$"
    r"|^/v1/admin/tenants$"
    r"|^/v1/schedules/\{[^/]+\}/(pause|resume|trigger|backfill)$"
    r"|^/v1/workflows/runs/\{[^/]+\}/(cancel|pause|resume|retry|steps/\{[^/]+\}/rerun)$"
)
_SCHEDULE = re.compile(r"^/v1/schedules/\{[^/]+\}$")  # PATCH, DELETE: 409 too
_RETRY_AFTER = {"description": "Seconds to wait before trying again.",
                "schema": {"type": "integer"}}
_WHY = {
    "400": "The body could not be parsed (it is not UTF-8 text).",
    "401": "No valid API key (or admin key).",
    "404": "No such resource for this tenant.",
    "409": "Conflict: an Idempotency-Key reused with another body, a command the resource's "
           "state does not allow, or a concurrent change (try again).",
    "413": "The request body is larger than allowed.",
    "422": "Invalid request: `errors` names each field and what is wrong with it.",
    "429": "Rate limited: wait `Retry-After` seconds.",
    "503": "Unavailable (the database is away): try again after `Retry-After` seconds.",
}
_HEADERS = {
    "401": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    "409": {"Retry-After": _RETRY_AFTER},
    "429": {"Retry-After": _RETRY_AFTER},
    "503": {"Retry-After": _RETRY_AFTER},
}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` document the problem answers."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # FastAPI's, cached until routes change
        if "Problem" not in schema.get("components", {}).get("schemas", {}):
            document_problems(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = ProblemBody.model_json_schema()
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                _not_null(parameter.get("schema", {}))
            responses = operation.setdefault("responses", {})
            for status in problem_statuses(path, method, operation):
                own = responses.get(status, {}).get("description")  # a route's own words
                responses[status] = _problem_response(status, own)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def problem_statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    """The problem+json statuses this operation can answer."""
    statuses = []
    if operation.get("security"):
        statuses.append("401")
        if not path.startswith("/v1/admin"):
            statuses.append("429")
    if "{" in path or "404" in operation["responses"]:
        statuses.append("404")
    if (method == "post" and _CONFLICTS.match(path)) or (
        method in ("patch", "delete") and _SCHEDULE.match(path)
    ):
        statuses.append("409")
    if "requestBody" in operation:
        statuses += ["400", "413"]
    if {"requestBody", "parameters"} & operation.keys() or "422" in operation["responses"]:
        statuses.append("422")
    if path not in _NO_DATABASE:
        statuses.append("503")
    return statuses


def _not_null(schema: dict[str, Any]) -> None:
    """``anyOf: [X, null]`` (FastAPI's optional parameter) → X, in place."""
    branches = schema.get("anyOf")
    if not branches or {"type": "null"} not in branches:
        return
    rest = [branch for branch in branches if branch != {"type": "null"}]
    del schema["anyOf"]
    if schema.get("default", ...) is None:
        del schema["default"]
    if len(rest) == 1:
        schema.update(rest[0])
    else:
        schema["anyOf"] = rest


def _problem_response(status: str, description: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or _WHY[status],
        "content": {MEDIA_TYPE: {"schema": _PROBLEM_REF}},
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response
