"""FastAPI dependencies as Annotated aliases."""

from typing import Annotated

from fastapi import Depends, Header, Request

from application.audit import AuditTrail
from infrastructure.container import Container
from infrastructure.event_log import PostgresEventLog


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


def get_tenant(
    container: ContainerDep,
    x_tenant_id: Annotated[str | None, Header(min_length=1, max_length=100)] = None,
) -> str:
    """The tenant (for now from X-Tenant-Id, defaulting to the configured tenant)."""
    return x_tenant_id or container.settings.default_tenant


TenantDep = Annotated[str, Depends(get_tenant)]


def get_audit(container: ContainerDep) -> AuditTrail:
    return AuditTrail(container.service_calls, PostgresEventLog.of(container.service_calls))


AuditDep = Annotated[AuditTrail, Depends(get_audit)]
