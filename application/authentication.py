"""Who is calling: an API key → its tenant and limits; the admin key → admin.

Tenants are read through a short-lived cache, so a revoked or expired key stops working within
``CACHE_SECONDS`` in every API process, and a request costs no database read otherwise. A key
the cached tenant does not know reloads it (at most every ``RELOAD_SECONDS``), so a key issued
by another process works at once.
"""

import hmac
import threading
import time
from dataclasses import dataclass

from application.cache_only import NotCachedError
from application.clock import utcnow
from application.tenants import Tenants, hash_secret, parse_key
from domain.tenant import Tenant

CACHE_SECONDS = 1.0
RELOAD_SECONDS = 0.1  # an unknown key reloads its tenant, at most this often
_MAX_CACHED = 10_000


@dataclass(frozen=True)
class Principal:
    tenant: str
    key_id: str
    rate_per_second: float
    burst: int


class Authenticator:
    def __init__(
        self,
        tenants: Tenants,
        *,
        admin_key: str | None,
        default_rate_per_second: float,
        default_burst: int,
    ) -> None:
        self._tenants = tenants
        self._admin_key = admin_key
        self._default_rate = default_rate_per_second
        self._default_burst = default_burst
        self._cache: dict[str, tuple[float, Tenant | None]] = {}
        self._lock = threading.Lock()

    @property
    def admin_enabled(self) -> bool:
        return bool(self._admin_key)

    def is_admin(self, token: str) -> bool:
        return bool(self._admin_key) and hmac.compare_digest(
            token.encode(), (self._admin_key or "").encode()
        )

    def authenticate(self, token: str, *, cached_only: bool = False) -> Principal | None:
        """``cached_only``: raise ``NotCachedError`` rather than read the database."""
        parsed = parse_key(token)
        if parsed is None:
            return None
        tenant = self._tenant(parsed.tenant, cached_only=cached_only)
        if tenant is None or parsed.key_id not in tenant.keys:  # a key just issued?
            tenant = self._tenant(parsed.tenant, max_age=RELOAD_SECONDS, cached_only=cached_only)
        key = tenant.key_for(parsed.key_id, utcnow()) if tenant else None
        if key is None or not hmac.compare_digest(hash_secret(parsed.secret), key.secret_hash):
            return None
        return Principal(
            parsed.tenant,
            key.key_id,
            key.rate_per_second or self._default_rate,
            key.burst or self._default_burst,
        )

    def forget(self, tenant: str) -> None:
        """Drop a cached tenant (after changing its keys in this process)."""
        with self._lock:
            self._cache.pop(tenant, None)

    def _tenant(
        self, name: str, max_age: float = CACHE_SECONDS, *, cached_only: bool = False
    ) -> Tenant | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        if cached_only:
            raise NotCachedError(name)
        tenant = self._tenants.find(name)
        with self._lock:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[name] = (now, tenant)
        return tenant
