"""/v1/retry-policy: the tenant's default retry policy (calls may override any field)."""

from typing import Any

from fastapi import APIRouter

from domain.retry_policy import RetryPolicy
from interfaces.api.dependencies import ContainerDep, TenantDep
from interfaces.api.schemas import RetryPolicyCreate

router = APIRouter(prefix="/v1/retry-policy", tags=["retry policy"])


@router.get("", response_model=RetryPolicyCreate)
def get_default_retry_policy(container: ContainerDep, tenant: TenantDep) -> dict[str, Any]:
    return container.tenant_defaults.retry_policy(tenant).as_dict()


@router.put("", response_model=RetryPolicyCreate)
def set_default_retry_policy(
    body: RetryPolicyCreate, container: ContainerDep, tenant: TenantDep
) -> dict[str, Any]:
    """Set the default for calls submitted from now on; fields left out take built-in defaults."""
    policy = RetryPolicy.from_dict(body.model_dump())
    return container.tenant_defaults.set_retry_policy(tenant, policy).as_dict()
