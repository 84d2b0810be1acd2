"""Validation errors name the field the client got wrong, whatever the kind of mistake."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.duecall_process import DuecallProcess
from tests.support.problems import assert_problem

pytestmark = pytest.mark.e2e


def _fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [error["field"] for error in response.json()["errors"]]


def test_due_at_with_delay_seconds_names_delay_seconds(api: httpx.Client) -> None:
    due_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = {"request": {"url": "http://x.test/"}, "due_at": due_at, "delay_seconds": 5}
    assert "delay_seconds" in _fields(api.post("/v1/service-calls", json=body))


def test_malformed_json_names_the_body(api: httpx.Client) -> None:
    response = api.post(
        "/v1/service-calls", content=b'{"request": ', headers={"content-type": "application/json"}
    )
    assert _fields(response) == ["body"]


CALL = "/v1/service-calls/01a20190-0bf1-7ac5-9f64-bfcd50429f19"


def _unauthorized(response: httpx.Response) -> None:
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_request_without_an_api_key_is_401(duecall_server: DuecallProcess) -> None:
    with httpx.Client(base_url=duecall_server.url, timeout=10.0) as anonymous:
        _unauthorized(anonymous.get(CALL))
        _unauthorized(anonymous.get(CALL, headers={"X-Tenant-Id": "default"}))  # not a key
        body = {"request": {"url": "http://x.test/"}}
        _unauthorized(anonymous.post("/v1/service-calls", json=body))


def test_a_malformed_or_unknown_api_key_is_401(duecall_server: DuecallProcess) -> None:
    key = duecall_server.tenant_key("default")
    prefix, tenant, key_id, secret = key.split("_", 3)
    refused = {
        "no credentials": "Bearer",
        "another scheme": f"Basic {key}",
        "not a key": "Bearer not-a-key",
        "a truncated key": f"Bearer {prefix}_{tenant}",
        "a wrong secret": f"Bearer {prefix}_{tenant}_{key_id}_{secret[::-1]}x",
        "an unknown key id": f"Bearer {prefix}_{tenant}_{key_id}x_{secret}",
        "an unknown tenant": f"Bearer {prefix}_no-such-tenant_{key_id}_{secret}",
        "another tenant's name": f"Bearer {prefix}_other_{key_id}_{secret}",
    }
    with httpx.Client(base_url=duecall_server.url, timeout=10.0) as client:
        for why, authorization in refused.items():
            response = client.get(CALL, headers={"Authorization": authorization})
            assert response.status_code == 401, (why, response.text)
            _unauthorized(response)


def test_the_tenant_is_the_keys_whatever_x_tenant_id_says(api: httpx.Client) -> None:
    body = {"request": {"url": "http://x.test/"}, "delay_seconds": 3600}
    response = api.post("/v1/service-calls", json=body, headers={"X-Tenant-Id": "someone-else"})
    assert response.status_code == 201, response.text
    assert response.json()["tenant_id"] == "default"  # `api` carries a key of tenant "default"
    api.post(f"/v1/service-calls/{response.json()['id']}/cancel")
