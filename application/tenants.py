"""Tenants and their API keys and signing secrets: create, issue, rotate, revoke, list.

An API key reads ``dc_<tenant>_<key id>_<secret>``: the tenant and key id say where to look,
and only a SHA-256 of the secret part is recorded (the secret has 256 random bits, so a fast
hash is enough). A signing secret reads ``whsec_<base64>`` and is recorded sealed.
"""

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from application.clock import utcnow
from application.outbox import TransactionEffects, record
from application.ports import SecretBox
from domain.errors import DomainError
from domain.tenant import ApiKey, Tenant, check_tenant_name, tenant_id_for

KEY_PREFIX = "dc"
SIGNING_SECRET_PREFIX = "whsec_"
DEFAULT_GRACE = timedelta(hours=24)


class TenantNotFoundError(DomainError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no tenant {name!r}")


class TenantExistsError(DomainError):
    def __init__(self, name: str) -> None:
        super().__init__(f"tenant {name!r} exists already")


class TenantRegistry(Protocol):
    def tenant_names(self) -> list[str]:
        """Every tenant's name, in order."""


@dataclass(frozen=True)
class IssuedKey:
    """A key just issued: ``key`` is the only time its secret is shown."""

    tenant: str
    api_key: ApiKey
    key: str


@dataclass(frozen=True)
class ParsedKey:
    tenant: str
    key_id: str
    secret: str


def parse_key(token: str) -> ParsedKey | None:
    parts = token.split("_", 3)
    if len(parts) != 4 or parts[0] != KEY_PREFIX or not all(parts):
        return None
    return ParsedKey(parts[1], parts[2], parts[3])


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def signing_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` signing secret."""
    return base64.b64decode(secret.removeprefix(SIGNING_SECRET_PREFIX))


def _new_signing_secret() -> str:
    return SIGNING_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _issue(
    tenant: Tenant, rate_per_second: float | None, burst: int | None, now: datetime
) -> IssuedKey:
    key_id = secrets.token_hex(4)
    while key_id in tenant.keys:
        key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    prefix = f"{KEY_PREFIX}_{tenant.name}_{key_id}"
    api_key = tenant.issue_key(key_id, prefix, hash_secret(secret), now, rate_per_second, burst)
    return IssuedKey(tenant.name, api_key, f"{prefix}_{secret}")


class Tenants:
    """The use cases, over the application whose events table holds the tenants."""

    def __init__(self, app: Application[UUID], box: SecretBox, registry: TenantRegistry) -> None:
        self._app = app
        self._box = box
        self._registry = registry

    def create(
        self, name: str, rate_per_second: float | None = None, burst: int | None = None
    ) -> IssuedKey:
        if self.find(name) is not None:
            raise TenantExistsError(name)
        now = utcnow()
        sealed = self._box.seal(_new_signing_secret())
        tenant = Tenant.register(check_tenant_name(name), sealed, now)
        issued = _issue(tenant, rate_per_second, burst, now)
        try:
            record(self._app, [tenant], TransactionEffects(tenants=[name]))
        except IntegrityError:
            raise TenantExistsError(name) from None
        return issued

    def get(self, name: str) -> Tenant:
        try:
            tenant: Tenant = self._app.repository.get(tenant_id_for(name))
        except AggregateNotFoundError:
            raise TenantNotFoundError(name) from None
        return tenant

    def find(self, name: str) -> Tenant | None:
        try:
            return self.get(name)
        except TenantNotFoundError:
            return None

    def all(self) -> list[Tenant]:
        return [self.get(name) for name in self._registry.tenant_names()]

    def issue_key(
        self, name: str, rate_per_second: float | None = None, burst: int | None = None
    ) -> IssuedKey:
        tenant = self.get(name)
        issued = _issue(tenant, rate_per_second, burst, utcnow())
        record(self._app, [tenant])
        return issued

    def rotate_key(self, name: str, key_id: str, grace: timedelta = DEFAULT_GRACE) -> IssuedKey:
        """A new key like the old one; the old one keeps working for ``grace``."""
        tenant = self.get(name)
        now = utcnow()
        old = tenant.keys.get(key_id)
        tenant.expire_key(key_id, now + grace, now)
        assert old is not None
        issued = _issue(tenant, old.rate_per_second, old.burst, now)
        record(self._app, [tenant])
        return issued

    def revoke_key(self, name: str, key_id: str) -> ApiKey:
        tenant = self.get(name)
        revoked = tenant.revoke_key(key_id, utcnow())
        record(self._app, [tenant])
        return revoked

    def rotate_signing_secret(self, name: str, grace: timedelta = DEFAULT_GRACE) -> list[str]:
        """A new signing secret; the ones in use now stay in use for ``grace``."""
        tenant = self.get(name)
        now = utcnow()
        tenant.rotate_signing_secret(self._box.seal(_new_signing_secret()), now, now + grace)
        record(self._app, [tenant])
        return self.signing_secrets(tenant, now)

    def signing_secrets(self, tenant: Tenant, now: datetime | None = None) -> list[str]:
        """The tenant's signing secrets in use, in clear, newest first."""
        in_use = tenant.signing_secrets_at(now or utcnow())
        return [self._box.open(s.sealed) for s in in_use]

