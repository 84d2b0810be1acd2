"""A tenant's default retry policy: set over the API, applied to calls submitted without one.

Submits read it through a short-lived cache, so a change applies within ``CACHE_SECONDS`` in
every API process.
"""

import threading
import time
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application

from application.cache_only import NotCachedError
from application.outbox import record
from domain.retry_policy import RetryPolicy
from domain.tenant_settings import TenantSettings, tenant_settings_id

CACHE_SECONDS = 5.0


class TenantDefaults:
    def __init__(self, app: Application[UUID]) -> None:
        self._app = app
        self._cache: dict[str, tuple[float, RetryPolicy]] = {}
        self._lock = threading.Lock()

    def retry_policy(self, tenant_id: str, *, cached_only: bool = False) -> RetryPolicy:
        """``cached_only``: raise ``NotCachedError`` rather than read the database."""
        with self._lock:
            cached = self._cache.get(tenant_id)
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        if cached_only:
            raise NotCachedError(tenant_id)
        settings = self._find(tenant_id)
        policy = settings.retry_policy if settings else RetryPolicy()
        with self._lock:
            self._cache[tenant_id] = (time.monotonic(), policy)
        return policy

    def set_retry_policy(self, tenant_id: str, policy: RetryPolicy) -> RetryPolicy:
        settings = self._find(tenant_id) or TenantSettings.register(tenant_id)
        settings.set_retry_policy(policy)
        record(self._app, [settings])
        with self._lock:
            self._cache.pop(tenant_id, None)
        return settings.retry_policy

    def policy_for_call(
        self, tenant_id: str, overrides: dict[str, Any] | None, *, cached_only: bool = False
    ) -> RetryPolicy:
        """The tenant's default, with the fields a call sets itself replaced."""
        default = self.retry_policy(tenant_id, cached_only=cached_only)
        if not overrides:
            return default
        return RetryPolicy.from_dict({**default.as_dict(), **overrides})

    def _find(self, tenant_id: str) -> TenantSettings | None:
        try:
            settings: TenantSettings = self._app.repository.get(tenant_settings_id(tenant_id))
        except AggregateNotFoundError:
            return None
        return settings
