"""POST /v1/service-calls:batch — all validated before any is recorded; keys per item."""

from collections.abc import Callable

import httpx
import pytest

from harness.target_server import TargetServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
BATCH = "/v1/service-calls:batch"
AsTenant = Callable[[str], dict[str, str]]


def _item(url: str, **extra: object) -> dict[str, object]:
    return {"name": "batch", "request": {"method": "GET", "url": url}, **extra}


def _count(api: httpx.Client, tenant: dict[str, str]) -> int:
    response = api.get("/v1/service-calls", params={"include_total": "true", "limit": 1},
                       headers=tenant)
    return int(response.json()["total"])


def test_a_batch_is_recorded_and_every_call_is_made(
    api: httpx.Client, target: TargetServer, as_tenant: AsTenant
) -> None:
    calls = [_item(f"{target.url}/batch-made/{n}") for n in range(300)]
    response = api.post(BATCH, json={"calls": calls}, headers=as_tenant("batch-a"))
    assert response.status_code == 201, response.text
    items = response.json()["items"]
    assert len({item["id"] for item in items}) == 300
    assert all(item["created"] and item["status"] == "scheduled" for item in items)
    wait_until(lambda: sum(r.path.startswith("/batch-made/") for r in target.requests) >= 300,
               timeout=20)


def test_one_invalid_item_rejects_the_whole_batch_naming_it(
    api: httpx.Client, target: TargetServer, as_tenant: AsTenant
) -> None:
    tenant = as_tenant("batch-b")
    calls = [_item(f"{target.url}/ok"), _item(f"{target.url}/ok"), _item("ftp://nowhere")]
    response = api.post(BATCH, json={"calls": calls}, headers=tenant)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "calls.2.request.url"
    api.post("/v1/service-calls", json=_item(f"{target.url}/ok", delay_seconds=3600),
             headers=tenant)  # the read model has caught up past it
    wait_until(lambda: _count(api, tenant) == 1, timeout=5)


def test_items_with_keys_seen_before_answer_with_the_original(
    api: httpx.Client, target: TargetServer, as_tenant: AsTenant
) -> None:
    tenant = as_tenant("batch-c")
    first = api.post(BATCH, headers=tenant, json={"calls": [
        _item(f"{target.url}/ok", delay_seconds=3600, idempotency_key="k1"),
        _item(f"{target.url}/ok", delay_seconds=3600, idempotency_key="k2"),
    ]})
    assert first.status_code == 201
    again = api.post(BATCH, headers=tenant, json={"calls": [
        _item(f"{target.url}/ok", delay_seconds=3600, idempotency_key="k1"),
        _item(f"{target.url}/ok", delay_seconds=3600, idempotency_key="k3"),
    ]})
    assert again.status_code == 201
    created = [item["created"] for item in again.json()["items"]]
    assert created == [False, True]
    assert again.json()["items"][0]["id"] == first.json()["items"][0]["id"]
    reused = api.post(BATCH, headers=tenant, json={"calls": [
        _item(f"{target.url}/other", delay_seconds=3600, idempotency_key="k2"),
    ]})
    assert reused.status_code == 409


def test_more_than_a_thousand_calls_are_refused(api: httpx.Client) -> None:
    calls = [_item("http://x.test/")] * 1001
    response = api.post(BATCH, json={"calls": calls})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "calls"
