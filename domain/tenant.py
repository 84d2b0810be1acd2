"""The Tenant aggregate: who may call the API (its keys) and how its requests are signed.

A key is recorded by its id, its display prefix and a hash of its secret part; the secret
itself is shown once, when the key is issued, and never recorded. A rotation issues a new key
and lets the old one live until ``expires_at``, so a client can switch over. Signing secrets
are recorded sealed (the application seals them); during a rotation the previous secret stays
in use until its ``valid_until``, and requests carry a signature for each secret in use.
"""

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import DomainError, InvalidRequestError

_NAMESPACE = UUID("6d0c3b5e-1f7a-4e2b-9c8d-2a4b6c8e0f13")
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def tenant_id_for(name: str) -> UUID:
    return uuid5(_NAMESPACE, name)


def check_tenant_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidRequestError(
            "name", "must be 1-63 lower-case letters, digits or '-', not starting with '-'"
        )
    return name


class ApiKeyNotFoundError(DomainError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"no active API key {key_id!r}")


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    prefix: str
    secret_hash: str
    created_at: datetime
    rate_per_second: float | None = None
    burst: int | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def active_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.key_id,
            "prefix": self.prefix,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "rate_per_second": self.rate_per_second,
            "burst": self.burst,
        }


@dataclass(frozen=True)
class SigningSecret:
    sealed: str
    created_at: datetime
    valid_until: datetime | None = None

    def in_use_at(self, now: datetime) -> bool:
        return self.valid_until is None or now < self.valid_until


class Tenant(Aggregate):
    TOPIC = "duecall:Tenant"

    class Event(Aggregate.Event):
        TOPIC = "duecall:Tenant.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "duecall:Tenant.Created"

    @event("Registered", topic="duecall:Tenant.Registered")
    def __init__(self, id: UUID, name: str, signing_secret: str, at: datetime) -> None:
        self.name = name
        self.created_at = at
        self.keys: dict[str, ApiKey] = {}
        self.signing_secrets = [SigningSecret(signing_secret, at)]

    @classmethod
    def register(cls, name: str, signing_secret: str, at: datetime) -> "Tenant":
        check_tenant_name(name)
        return cls(id=tenant_id_for(name), name=name, signing_secret=signing_secret, at=at)

    # -- API keys ---------------------------------------------------------------------------

    def issue_key(
        self,
        key_id: str,
        prefix: str,
        secret_hash: str,
        at: datetime,
        rate_per_second: float | None = None,
        burst: int | None = None,
    ) -> ApiKey:
        self._key_issued(
            key_id=key_id, prefix=prefix, secret_hash=secret_hash, at=at,
            rate_per_second=rate_per_second, burst=burst,
        )
        return self.keys[key_id]

    @event("KeyIssued", topic="duecall:Tenant.KeyIssued")
    def _key_issued(
        self,
        key_id: str,
        prefix: str,
        secret_hash: str,
        at: datetime,
        rate_per_second: float | None,
        burst: int | None,
    ) -> None:
        self.keys[key_id] = ApiKey(key_id, prefix, secret_hash, at, rate_per_second, burst)

    def expire_key(self, key_id: str, expires_at: datetime, now: datetime) -> None:
        """The key stops working at ``expires_at`` (a rotation's grace period)."""
        self._active_key(key_id, now)
        self._key_expiry_set(key_id=key_id, expires_at=expires_at)

    @event("KeyExpirySet", topic="duecall:Tenant.KeyExpirySet")
    def _key_expiry_set(self, key_id: str, expires_at: datetime) -> None:
        self.keys[key_id] = replace(self.keys[key_id], expires_at=expires_at)

    def revoke_key(self, key_id: str, at: datetime) -> ApiKey:
        self._active_key(key_id, at)
        self._key_revoked(key_id=key_id, at=at)
        return self.keys[key_id]

    @event("KeyRevoked", topic="duecall:Tenant.KeyRevoked")
    def _key_revoked(self, key_id: str, at: datetime) -> None:
        self.keys[key_id] = replace(self.keys[key_id], revoked_at=at)

    def key_for(self, key_id: str, now: datetime) -> ApiKey | None:
        key = self.keys.get(key_id)
        return key if key is not None and key.active_at(now) else None

    def _active_key(self, key_id: str, now: datetime) -> ApiKey:
        key = self.key_for(key_id, now)
        if key is None:
            raise ApiKeyNotFoundError(key_id)
        return key

    # -- signing secrets ----------------------------------------------------------------------

    def rotate_signing_secret(self, sealed: str, at: datetime, until: datetime) -> None:
        """Sign with the new secret from now on, and with the current ones until ``until``."""
        self._signing_secret_rotated(sealed=sealed, at=at, previous_valid_until=until)

    @event("SigningSecretRotated", topic="duecall:Tenant.SigningSecretRotated")
    def _signing_secret_rotated(
        self, sealed: str, at: datetime, previous_valid_until: datetime
    ) -> None:
        kept = [
            s if s.valid_until is not None and s.valid_until < previous_valid_until
            else replace(s, valid_until=previous_valid_until)
            for s in self.signing_secrets
            if s.in_use_at(at)
        ]
        self.signing_secrets = [SigningSecret(sealed, at), *kept]

    def signing_secrets_at(self, now: datetime) -> list[SigningSecret]:
        """The secrets to sign with now, newest first."""
        return [s for s in self.signing_secrets if s.in_use_at(now)]

    def log_context(self) -> dict[str, str]:
        return {"tenant": self.name}
