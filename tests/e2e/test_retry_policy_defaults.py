"""A tenant's default retry policy applies to calls that do not set one; calls may override."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


def _submit(
    api: httpx.Client, tenant: dict[str, str], policy: dict[str, object] | None = None
) -> dict[str, Any]:
    body: dict[str, object] = {"request": {"url": "http://x.test/"}, "delay_seconds": 3600}
    if policy is not None:
        body["retry_policy"] = policy
    response = api.post("/v1/service-calls", json=body, headers=tenant)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_the_tenant_default_applies_and_calls_override_single_fields(
    api: httpx.Client, as_tenant: Callable[[str], dict[str, str]]
) -> None:
    tenant = as_tenant("defaults-a")
    assert api.get("/v1/retry-policy", headers=tenant).json()["max_attempts"] == 5
    put = api.put("/v1/retry-policy", headers=tenant,
                  json={"max_attempts": 9, "initial_backoff_seconds": 3})
    assert put.status_code == 200, put.text
    assert api.get("/v1/retry-policy", headers=tenant).json()["max_attempts"] == 9

    plain = _submit(api, tenant)["retry_policy"]
    assert (plain["max_attempts"], plain["initial_backoff_seconds"]) == (9, 3)
    overridden = _submit(api, tenant, {"max_attempts": 2})["retry_policy"]
    assert (overridden["max_attempts"], overridden["initial_backoff_seconds"]) == (2, 3)
    assert _submit(api, as_tenant("defaults-b"))["retry_policy"]["max_attempts"] == 5


def test_an_invalid_default_is_refused_naming_the_field(api: httpx.Client) -> None:
    response = api.put("/v1/retry-policy", json={"max_attempts": 0})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "max_attempts"
