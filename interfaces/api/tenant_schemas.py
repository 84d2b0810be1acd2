"""Request and response bodies of the admin endpoints: tenants, their keys, the workers."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from application.dispatch.liveness import LiveWorker
from application.tenants import IssuedKey
from domain.tenant import ApiKey, Tenant
from interfaces.api import patterns
from interfaces.api.fields import IntegerOrNone, Number, SafeText


class KeyLimits(BaseModel):
    rate_per_second: Number | None = Field(
        default=None, gt=0, le=1_000_000,
        description="Requests a second with this key; unset → the server's default.",
    )
    burst: IntegerOrNone = Field(
        default=None, ge=1, le=1_000_000, description="Requests at once; unset → the default."
    )


class TenantCreate(KeyLimits):
    name: SafeText = Field(
        min_length=1, max_length=63, pattern=patterns.TENANT_NAME,
        description="1-63 lower-case letters, digits or '-', not starting with '-'.",
    )


class Rotation(BaseModel):
    grace_seconds: Number = Field(
        default=86_400, ge=0, le=30 * 86_400,
        description="How long the old key or secret keeps working.",
    )


class ApiKeyPublic(BaseModel):
    id: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    rate_per_second: float | None
    burst: int | None

    @classmethod
    def of(cls, key: ApiKey) -> "ApiKeyPublic":
        return cls.model_validate(key.as_dict())


class IssuedKeyPublic(BaseModel):
    tenant: str
    api_key: ApiKeyPublic
    key: str = Field(description="The key itself: shown this once, never again.")

    @classmethod
    def of(cls, issued: IssuedKey) -> "IssuedKeyPublic":
        return cls(tenant=issued.tenant, api_key=ApiKeyPublic.of(issued.api_key), key=issued.key)


class TenantPublic(BaseModel):
    name: str
    created_at: datetime
    keys: list[ApiKeyPublic]

    @classmethod
    def of(cls, tenant: Tenant) -> "TenantPublic":
        keys = sorted(tenant.keys.values(), key=lambda k: k.created_at)
        return cls(
            name=tenant.name, created_at=tenant.created_at, keys=[ApiKeyPublic.of(k) for k in keys]
        )


class TenantList(BaseModel):
    items: list[TenantPublic]


class SigningSecrets(BaseModel):
    secrets: list[str] = Field(
        description="Secrets requests are signed with now, newest first (two during a rotation)."
    )


class WorkerPublic(BaseModel):
    id: UUID
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    in_flight: int = Field(description="Attempts in hand at its last heartbeat.")
    silent_seconds: float = Field(description="Since its last heartbeat.")

    @classmethod
    def of(cls, worker: LiveWorker) -> "WorkerPublic":
        return cls(**vars(worker))


class WorkerList(BaseModel):
    items: list[WorkerPublic]
