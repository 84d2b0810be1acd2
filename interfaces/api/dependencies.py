"""FastAPI dependencies as Annotated aliases.

The ones every request resolves are ``async def``: FastAPI runs a plain ``def`` dependency on a
worker thread, and such a hop costs a submit more than its own work. What may read the database
(a key or setting whose cache is stale) is answered from the cache on the event loop, and only
on a miss on a thread (``cached_or_off_loop``).
"""

import functools
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from application.audit import AuditTrail
from application.authentication import Principal
from application.cache_only import NotCachedError
from infrastructure.container import Container
from infrastructure.event_log import PostgresEventLog
from interfaces.api.problems import RateLimitedError, UnauthorizedError

T = TypeVar("T")


async def cached_or_off_loop(function: Callable[..., T], /, *args: object) -> T:
    """``function(*args, cached_only=True)`` on the event loop; when that would read the
    database (``NotCachedError``), ``function(*args)`` on a worker thread."""
    try:
        return function(*args, cached_only=True)
    except NotCachedError:
        return await run_in_threadpool(functools.partial(function, *args))


async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]
_bearer = HTTPBearer(auto_error=False, description="An API key: `dc_<tenant>_<id>_<secret>`.")
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def principal_for_key(
    container: Container,
    key: str | None,
    how: str = "Authorization: Bearer <key>",
    *,
    cached_only: bool = False,
) -> Principal:
    """The principal of an API key (401 without a valid one), within its rate limit (429).
    ``cached_only``: raise ``NotCachedError`` rather than read the database."""
    if not key:
        raise UnauthorizedError(f"an API key is required: {how}")
    principal = container.authenticator.authenticate(key, cached_only=cached_only)
    if principal is None:
        raise UnauthorizedError("the API key is not valid (unknown, revoked or expired)")
    wait = container.rate_limiter.wait_for(
        principal.key_id, principal.rate_per_second, principal.burst
    )
    if wait:
        raise RateLimitedError(principal.rate_per_second, wait)
    return principal


async def get_tenant(request: Request, credentials: CredentialsDep) -> str:
    """The tenant: always the one the caller's API key belongs to (401 without a valid key,
    429 over its rate limit). One dependency, not one per step: FastAPI solves each
    dependency of every request anew, each at a cost in CPU."""
    container: Container = request.app.state.container
    key = credentials.credentials if credentials else None
    principal = await cached_or_off_loop(principal_for_key, container, key)
    container.tracer.request_tenant(principal.tenant)
    return principal.tenant


TenantDep = Annotated[str, Depends(get_tenant)]


def require_admin(container: ContainerDep, credentials: CredentialsDep) -> None:
    if not container.authenticator.admin_enabled:
        raise UnauthorizedError("the admin API is disabled: set DUECALL_ADMIN_KEY to enable it")
    if credentials is None or not container.authenticator.is_admin(credentials.credentials):
        raise UnauthorizedError("the admin key is required: Authorization: Bearer <admin key>")


def get_audit(container: ContainerDep) -> AuditTrail:
    return AuditTrail(container.service_calls, PostgresEventLog.of(container.service_calls))


AuditDep = Annotated[AuditTrail, Depends(get_audit)]
