"""/v1/service-calls: submit a call, read its state and its attempts."""

from datetime import timedelta
from uuid import UUID

from fastapi import APIRouter, Response

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.request import RequestSpec
from interfaces.api.dependencies import ContainerDep, TenantDep
from interfaces.api.schemas import (
    ExecutionList,
    ExecutionPublic,
    ServiceCallCreate,
    ServiceCallPublic,
)

router = APIRouter(prefix="/v1/service-calls", tags=["service calls"])


@router.post("", status_code=201, response_model=ServiceCallPublic)
def submit_service_call(
    body: ServiceCallCreate, container: ContainerDep, tenant: TenantDep, response: Response
) -> ServiceCallPublic:
    headers, payload = body.request.encoded()
    request = RequestSpec(
        body.request.method, body.request.url, headers, payload, body.request.timeout_seconds
    )
    now = utcnow()
    due_at = body.due_at or now + timedelta(seconds=body.delay_seconds or 0)
    call = container.service_calls.submit(
        SubmitServiceCall(
            tenant_id=tenant,
            name=body.name,
            request=request,
            due_at=due_at,
            tags=body.tags,
            correlation_id=body.correlation_id,
        )
    )
    response.headers["Location"] = f"/v1/service-calls/{call.id}"
    return ServiceCallPublic.model_validate(call.describe())


@router.get("/{service_call_id}", response_model=ServiceCallPublic)
def get_service_call(
    service_call_id: UUID, container: ContainerDep, tenant: TenantDep
) -> ServiceCallPublic:
    call = container.service_calls.get_call(tenant, service_call_id)
    return ServiceCallPublic.model_validate(call.describe())


@router.get("/{service_call_id}/executions", response_model=ExecutionList)
def list_executions(
    service_call_id: UUID, container: ContainerDep, tenant: TenantDep
) -> ExecutionList:
    call = container.service_calls.get_call(tenant, service_call_id)
    executions = container.executions.for_call(call.id, call.attempt)
    return ExecutionList(items=[ExecutionPublic.model_validate(e.describe()) for e in executions])
