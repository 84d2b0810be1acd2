"""TenantSettings: a tenant's defaults (for now, its default retry policy), as events."""

from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.retry_policy import RetryPolicy

_NAMESPACE = UUID("3c1f2a9e-8d7b-4c6a-b5e4-0f1e2d3c4b5a")


def tenant_settings_id(tenant_id: str) -> UUID:
    return uuid5(_NAMESPACE, tenant_id)


class TenantSettings(Aggregate):
    TOPIC = "duecall:TenantSettings"

    class Event(Aggregate.Event):
        TOPIC = "duecall:TenantSettings.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "duecall:TenantSettings.Created"

    @event("Registered", topic="duecall:TenantSettings.Registered")
    def __init__(self, id: UUID, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.retry_policy = RetryPolicy()

    @classmethod
    def register(cls, tenant_id: str) -> "TenantSettings":
        return cls(id=tenant_settings_id(tenant_id), tenant_id=tenant_id)

    def set_retry_policy(self, policy: RetryPolicy) -> None:
        if policy != self.retry_policy:
            self._retry_policy_set(retry_policy=policy.as_dict())

    @event("RetryPolicySet", topic="duecall:TenantSettings.RetryPolicySet")
    def _retry_policy_set(self, retry_policy: dict[str, Any]) -> None:
        self.retry_policy = RetryPolicy.from_dict(retry_policy)

    def log_context(self) -> dict[str, str]:
        return {"tenant_id": self.tenant_id}
