"""FastAPI dependencies as Annotated aliases."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from application.audit import AuditTrail
from application.authentication import Principal
from infrastructure.container import Container
from infrastructure.event_log import PostgresEventLog
from interfaces.api.problems import RateLimitedError, UnauthorizedError


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]
_bearer = HTTPBearer(auto_error=False, description="An API key: `dc_<tenant>_<id>_<secret>`.")
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def get_principal(container: ContainerDep, credentials: CredentialsDep) -> Principal:
    """The caller's API key (401 without a valid one), within its rate limit (429)."""
    if credentials is None:
        raise UnauthorizedError("an API key is required: Authorization: Bearer <key>")
    principal = container.authenticator.authenticate(credentials.credentials)
    if principal is None:
        raise UnauthorizedError("the API key is not valid (unknown, revoked or expired)")
    wait = container.rate_limiter.wait_for(
        principal.key_id, principal.rate_per_second, principal.burst
    )
    if wait:
        raise RateLimitedError(principal.rate_per_second, wait)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_tenant(principal: PrincipalDep) -> str:
    """The tenant: always the one the API key belongs to."""
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
