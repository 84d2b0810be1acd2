"""Idempotent submits: one call per (tenant, Idempotency-Key), enforced by the database.

The key is recorded by a unique constraint in the same transaction as the call's Submitted
event (``TransactionEffects(idempotency=[IdempotencyRecord(...)])``); a concurrent or later
submit with the same key fails that constraint and is answered from the record instead.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID


@dataclass(frozen=True)
class IdempotencyRecord:
    tenant_id: str
    key: str
    service_call_id: UUID
    request_hash: str


class IdempotencyKeys(Protocol):
    def find(self, tenant_id: str, keys: Sequence[str]) -> dict[str, IdempotencyRecord]:
        """The records of earlier submits with these keys, by key."""


class IdempotencyKeyReusedError(Exception):
    """The key was used before with a different request."""

    def __init__(self, key: str, service_call_id: UUID) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was used for another request (call {service_call_id})"
        )
        self.key = key
        self.service_call_id = service_call_id
