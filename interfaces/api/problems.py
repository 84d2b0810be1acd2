"""Errors → RFC 9457 problem+json, in one place."""

import math
import uuid
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from application.circuit_admin import CircuitNotFoundError
from application.conflicts import ConcurrentUpdateError
from application.group_commit import NotRecordedError
from application.idempotency import IdempotencyKeyReusedError
from application.schedules import ScheduleNotFoundError
from application.tenants import TenantExistsError, TenantNotFoundError
from application.workflow_definitions import WorkflowDefinitionNotFoundError
from application.workflows import WorkflowRunNotFoundError
from domain.errors import (
    InvalidRequestError,
    InvalidTransitionError,
    RequestTooLargeError,
    ServiceCallNotFoundError,
)
from domain.schedule_status import ScheduleTransitionError
from domain.tenant import ApiKeyNotFoundError
from domain.workflow_run_status import WorkflowRunTransitionError
from infrastructure.database import DATABASE_UNAVAILABLE

log = structlog.get_logger(__name__)
MEDIA_TYPE = "application/problem+json"


class ProblemBody(BaseModel):
    """RFC 9457 problem details, as every error is answered (OpenAPI: ``Problem``)."""

    model_config = ConfigDict(extra="allow", title="Problem")
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = Field(
        default=None, description="422 and 413: each field (`field`) and what is wrong "
        "with it (`message`)."
    )
    request_id: str | None = Field(
        default=None, description="500: the id the error was logged with (also `X-Request-Id`)."
    )


class UnauthorizedError(Exception):
    """No valid key for this request (→ 401)."""


class RateLimitedError(Exception):
    """The key made more requests than its rate allows (→ 429 with Retry-After)."""

    def __init__(self, rate_per_second: float, wait_seconds: float) -> None:
        super().__init__(f"more than {rate_per_second:g} requests a second with this API key")
        self.wait_seconds = wait_seconds


def problem(
    status: int,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    """("body", "request", "url") → "request.url"; the first element says where it was."""
    return ".".join(str(p) for p in loc[1:]) or str(loc[0]) if loc else "body"


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": "body" if e["type"] == "json_invalid" else _field(tuple(e["loc"])),
         "message": e["msg"]}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(422, "Invalid request", detail, errors=errors)


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidRequestError)
    errors = [{"field": exc.field, "message": exc.message}]
    return problem(422, "Invalid request", str(exc), errors=errors)


async def _too_large(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestTooLargeError)
    errors = [{"field": exc.field, "message": exc.message}]
    return problem(413, "Content too large", str(exc), errors=errors)


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return problem(404, "Not found", str(exc))


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidTransitionError)
    return problem(409, "Conflict", str(exc), status_of_call=exc.status)


async def _schedule_conflict(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ScheduleTransitionError)
    return problem(409, "Conflict", str(exc), status_of_schedule=exc.status)


async def _workflow_conflict(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, WorkflowRunTransitionError)
    return problem(409, "Conflict", str(exc), status_of_run=exc.status)


async def _concurrent_update(_: Request, exc: Exception) -> JSONResponse:
    return problem(409, "Conflict", str(exc), headers={"Retry-After": "1"})


async def _key_reused(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IdempotencyKeyReusedError)
    call_id = str(exc.service_call_id)
    return problem(409, "Idempotency-Key reused", str(exc), service_call_id=call_id)


async def _unauthorized(_: Request, exc: Exception) -> JSONResponse:
    return problem(401, "Unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"})


async def _rate_limited(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimitedError)
    retry_after = str(max(1, math.ceil(exc.wait_seconds)))
    return problem(429, "Too many requests", str(exc), headers={"Retry-After": retry_after})


async def _exists(_: Request, exc: Exception) -> JSONResponse:
    return problem(409, "Conflict", str(exc))


async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    """The database is away (stopped, restarting, unreachable) or too slow to answer. A write
    is recorded whole or not at all (one transaction; a batch of more than 250 calls is one
    per 250), so trying again is safe with Idempotency-Keys (per item for a batch): they also
    cover the rare case where the commit happened and only its answer was lost."""
    log.warning("database_unavailable", error=str(exc), error_type=type(exc).__name__)
    return problem(
        503,
        "Service unavailable",
        "the database is unavailable; try again",
        headers={"Retry-After": "1"},
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (404 no route, 405, ...), with their headers; a 405's ``Allow``
    lists the methods of every route of the path (Starlette's names only the first route's)."""
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        named = {m.strip() for m in headers.get("Allow", "").split(",") if m.strip()}
        headers["Allow"] = ", ".join(sorted(named | _allowed_methods(request)))
    return problem(exc.status_code, str(exc.detail), str(exc.detail), headers=headers)


def _allowed_methods(request: Request) -> set[str]:
    """The methods of every route whose path matches the request's."""
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if route.methods and regex is not None and regex.match(path):
            methods |= route.methods
    return methods


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Anything else: logged with its traceback and a request id; the caller gets the id,
    never the traceback. (Starlette's ServerErrorMiddleware calls this, then re-raises.)"""
    request_id = uuid.uuid4().hex
    log.error("unhandled_error", request_id=request_id, method=request.method,
              path=request.url.path, exc_info=exc)
    detail = f"an unexpected error occurred; quote request id {request_id} when reporting it"
    return problem(500, "Internal server error", detail, headers={"X-Request-Id": request_id},
                   request_id=request_id)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(InvalidRequestError, _invalid)
    app.add_exception_handler(RequestTooLargeError, _too_large)
    app.add_exception_handler(ServiceCallNotFoundError, _not_found)
    app.add_exception_handler(ScheduleNotFoundError, _not_found)
    app.add_exception_handler(WorkflowRunNotFoundError, _not_found)
    app.add_exception_handler(WorkflowDefinitionNotFoundError, _not_found)
    app.add_exception_handler(CircuitNotFoundError, _not_found)
    app.add_exception_handler(TenantNotFoundError, _not_found)
    app.add_exception_handler(ApiKeyNotFoundError, _not_found)
    app.add_exception_handler(TenantExistsError, _exists)
    app.add_exception_handler(UnauthorizedError, _unauthorized)
    app.add_exception_handler(RateLimitedError, _rate_limited)
    app.add_exception_handler(InvalidTransitionError, _conflict)
    app.add_exception_handler(ScheduleTransitionError, _schedule_conflict)
    app.add_exception_handler(WorkflowRunTransitionError, _workflow_conflict)
    app.add_exception_handler(IdempotencyKeyReusedError, _key_reused)
    app.add_exception_handler(ConcurrentUpdateError, _concurrent_update)
    for unavailable in (*DATABASE_UNAVAILABLE, NotRecordedError):
        app.add_exception_handler(unavailable, _database_unavailable)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
