"""Tenants and their API keys, created through a running server's admin API."""

from collections.abc import Mapping

import httpx

from harness.processes import ADMIN_KEY, HarnessError

UNLIMITED = {"rate_per_second": 1_000_000.0, "burst": 1_000_000}  # a key's rate limit, unfelt


def issue_tenant_key(base_url: str, tenant: str, limits: Mapping[str, float] | None = None, *,
                     admin_key: str = ADMIN_KEY) -> str:
    """A new API key of ``tenant`` from the server at ``base_url`` (creating the tenant if it
    is new); ``limits``: rate_per_second, burst."""
    limits = dict(limits or {})
    admin = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=base_url, headers=admin, timeout=30.0, trust_env=False) as client:
        created = client.post("/v1/admin/tenants", json={"name": tenant, **limits})
        if created.status_code == 409:  # the tenant exists: another key of it
            created = client.post(f"/v1/admin/tenants/{tenant}/keys", json=limits)
        if created.status_code != 201:
            raise HarnessError(f"creating an API key of {tenant!r}: HTTP "
                               f"{created.status_code}: {created.text[:500]}")
        key: str = created.json()["key"]
        return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


_KEYS: dict[tuple[str, str], str] = {}


def tenant_headers(base_url: str, tenant: str) -> dict[str, str]:
    """Authorization headers of ``tenant`` for the server at ``base_url`` (one key per
    server and tenant, issued on first use)."""
    if (base_url, tenant) not in _KEYS:
        _KEYS[base_url, tenant] = issue_tenant_key(base_url, tenant)
    return bearer(_KEYS[base_url, tenant])
