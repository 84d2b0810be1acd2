"""/v1/signing-secret: the secrets a tenant's targets verify request signatures with."""

from datetime import timedelta

from fastapi import APIRouter

from interfaces.api.dependencies import ContainerDep, TenantDep
from interfaces.api.tenant_schemas import Rotation, SigningSecrets

router = APIRouter(prefix="/v1/signing-secret", tags=["signing"])


@router.get("", response_model=SigningSecrets)
def get_signing_secrets(container: ContainerDep, tenant: TenantDep) -> SigningSecrets:
    tenants = container.tenants
    return SigningSecrets(secrets=tenants.signing_secrets(tenants.get(tenant)))


@router.post("/rotate", response_model=SigningSecrets)
def rotate_signing_secret(
    body: Rotation, container: ContainerDep, tenant: TenantDep
) -> SigningSecrets:
    """A new secret; the ones in use keep signing for ``grace_seconds`` (24 h by default)."""
    grace = timedelta(seconds=body.grace_seconds)
    return SigningSecrets(secrets=container.tenants.rotate_signing_secret(tenant, grace))
