"""Signing outgoing requests with their tenant's secrets (see domain/signing.py).

The worker reads a tenant's secrets through a cache, so sending costs one HMAC per secret and
no database read; a rotated secret is used within ``CACHE_SECONDS`` (the old one keeps being
valid for the rotation's grace period, so no request goes out unverifiable meanwhile).
"""

import asyncio
import time

from application.tenants import Tenants, signing_key
from domain.signing import signature_headers

CACHE_SECONDS = 30.0


class RequestSigner:
    def __init__(self, tenants: Tenants) -> None:
        self._tenants = tenants
        self._keys: dict[str, tuple[float, list[bytes]]] = {}

    async def headers(self, tenant_id: str, message_id: str, body: bytes) -> dict[str, str]:
        """Signature headers for a request; none for a tenant that has no record (calls
        submitted without the API, as some tests do)."""
        keys = await self._keys_of(tenant_id)
        if not keys:
            return {}
        return signature_headers(keys, message_id, int(time.time()), body)

    async def _keys_of(self, tenant_id: str) -> list[bytes]:
        cached = self._keys.get(tenant_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        keys = await asyncio.to_thread(self._load, tenant_id)
        self._keys[tenant_id] = (now, keys)
        return keys

    def _load(self, tenant_id: str) -> list[bytes]:
        tenant = self._tenants.find(tenant_id)
        if tenant is None:
            return []
        return [signing_key(secret) for secret in self._tenants.signing_secrets(tenant)]
