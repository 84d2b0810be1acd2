"""/v1/admin: tenants and their API keys, and the live workers, for the holder of the admin
key."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from interfaces.api.dependencies import ContainerDep, require_admin
from interfaces.api.fields import SafeText
from interfaces.api.tenant_schemas import (
    ApiKeyPublic,
    IssuedKeyPublic,
    KeyLimits,
    Rotation,
    SigningSecrets,
    TenantCreate,
    TenantList,
    TenantPublic,
    WorkerList,
    WorkerPublic,
)

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])
TenantName = Annotated[SafeText, Path()]
KeyId = Annotated[SafeText, Path()]


@router.post("/tenants", status_code=status.HTTP_201_CREATED, response_model=IssuedKeyPublic)
def create_tenant(body: TenantCreate, container: ContainerDep) -> IssuedKeyPublic:
    """Create a tenant with its first API key (shown in this answer only)."""
    issued = container.tenants.create(body.name, body.rate_per_second, body.burst)
    container.authenticator.forget(body.name)
    return IssuedKeyPublic.of(issued)


@router.get("/tenants", response_model=TenantList)
def list_tenants(container: ContainerDep) -> TenantList:
    return TenantList(items=[TenantPublic.of(t) for t in container.tenants.all()])


@router.get("/tenants/{name}", response_model=TenantPublic)
def get_tenant(name: TenantName, container: ContainerDep) -> TenantPublic:
    return TenantPublic.of(container.tenants.get(name))


@router.post(
    "/tenants/{name}/keys", status_code=status.HTTP_201_CREATED, response_model=IssuedKeyPublic
)
def issue_key(name: TenantName, body: KeyLimits, container: ContainerDep) -> IssuedKeyPublic:
    issued = container.tenants.issue_key(name, body.rate_per_second, body.burst)
    container.authenticator.forget(name)
    return IssuedKeyPublic.of(issued)


@router.post(
    "/tenants/{name}/keys/{key_id}/rotate",
    status_code=status.HTTP_201_CREATED,
    response_model=IssuedKeyPublic,
)
def rotate_key(
    name: TenantName, key_id: KeyId, body: Rotation, container: ContainerDep
) -> IssuedKeyPublic:
    """A new key with the same limits; the old one works for ``grace_seconds`` more."""
    grace = timedelta(seconds=body.grace_seconds)
    issued = container.tenants.rotate_key(name, key_id, grace)
    container.authenticator.forget(name)
    return IssuedKeyPublic.of(issued)


@router.post("/tenants/{name}/keys/{key_id}/revoke", response_model=ApiKeyPublic)
def revoke_key(name: TenantName, key_id: KeyId, container: ContainerDep) -> ApiKeyPublic:
    """The key stops working at once here, and within a second in every API process."""
    revoked = container.tenants.revoke_key(name, key_id)
    container.authenticator.forget(name)
    return ApiKeyPublic.of(revoked)


@router.post("/tenants/{name}/signing-secret/rotate", response_model=SigningSecrets)
def rotate_signing_secret(
    name: TenantName, body: Rotation, container: ContainerDep
) -> SigningSecrets:
    grace = timedelta(seconds=body.grace_seconds)
    return SigningSecrets(secrets=container.tenants.rotate_signing_secret(name, grace))


@router.get("/workers", response_model=WorkerList)
def list_workers(container: ContainerDep) -> WorkerList:
    """The workers that say they are alive: host, pid, attempts in flight, last heartbeat."""
    return WorkerList(items=[WorkerPublic.of(w) for w in container.worker_registry.live()])
