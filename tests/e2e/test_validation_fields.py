"""Validation errors name the field the client got wrong, whatever the kind of mistake."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest

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


def test_an_empty_tenant_header_is_refused(api: httpx.Client) -> None:
    response = api.get("/v1/service-calls/01a20190-0bf1-7ac5-9f64-bfcd50429f19",
                       headers={"X-Tenant-Id": ""})
    assert _fields(response) == ["x-tenant-id"]
