"""The query API over the read models, through the real FastAPI app and a real database."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from application.clock import utcnow
from harness.api_keys import bearer
from infrastructure.container import Container
from interfaces.api.app import create_app
from interfaces.api.query_schemas import StatsReport
from tests.support.read_models import catch_up, reset_read_models
from tests.support.workload import run_until_idle, submit_calls, workload_settings


@pytest.fixture
def client(database_url: str, clean_database: str) -> Iterator[TestClient]:
    """A client of the app with an API key of the tenant "t1", the workload's tenant."""
    with TestClient(create_app(workload_settings(database_url))) as test_client:
        reset_read_models(_container(test_client))
        test_client.headers.update(bearer(_container(test_client).tenants.create("t1").key))
        yield test_client


def _container(client: TestClient) -> Container:
    container: Container = client.app.state.container  # type: ignore[attr-defined]
    return container


def _workload(client: TestClient, count: int) -> None:
    submit_calls(_container(client), count)
    run_until_idle(_container(client))
    catch_up(_container(client))


def _get(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_calls_are_filtered_and_say_how_fresh_they_are(client: TestClient) -> None:
    _workload(client, 12)
    response = client.get("/v1/service-calls", params={"status": ["failed"]})
    body = response.json()
    assert {item["status"] for item in body["items"]} == {"failed"}
    assert len(body["items"]) == 6
    assert body["meta"]["lag"] == 0
    assert response.headers["X-Duecall-Position"] == str(body["meta"]["position"])
    tagged = _get(client, "/v1/service-calls", tag="batch-1", host="b.example",
                  include_total=True)
    assert tagged["total"] == 6
    assert all("batch-1" in item["tags"] for item in tagged["items"])
    assert _get(client, "/v1/service-calls", correlation_id="corr-3")["items"][0]["name"] == "alpha"


def test_another_tenant_sees_none_of_the_calls(client: TestClient) -> None:
    _workload(client, 4)
    t2 = bearer(_container(client).tenants.create("t2").key)
    other = client.get("/v1/service-calls", headers=t2).json()
    assert other["items"] == []


def _walk(client: TestClient, sort: str, during: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 7, "sort": sort, **({"cursor": cursor} if cursor else {})}
        page = _get(client, "/v1/service-calls", **params)
        seen += [item["id"] for item in page["items"]]
        during()
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


@pytest.mark.parametrize("sort", ["-created", "due"])
def test_walking_all_pages_returns_every_call_once_while_calls_are_added(
    client: TestClient, sort: str
) -> None:
    container = _container(client)
    before = submit_calls(container, 40, delay_seconds=60)
    catch_up(container)

    def add_calls() -> None:
        submit_calls(container, 2, delay_seconds=30 if sort == "due" else 60)
        catch_up(container)

    seen = _walk(client, sort, add_calls)
    assert len(seen) == len(set(seen))
    assert set(map(str, before)) <= set(seen)


def test_executions_latest_one_and_statistics(client: TestClient) -> None:
    _workload(client, 8)
    failed = _get(client, "/v1/executions", outcome=["failed"], name="beta")
    assert failed["items"]
    assert {e["outcome"] for e in failed["items"]} == {"failed"}
    latest = _get(client, "/v1/executions/latest")["items"]
    assert sorted(e["name"] for e in latest) == ["alpha", "beta", "gamma"]
    one = _get(client, f"/v1/executions/{latest[0]['id']}")
    assert one["id"] == latest[0]["id"]
    assert one["meta"]["projection"] == "executions"
    now = utcnow()
    stats = _get(client, "/v1/stats", **{"from": (now - timedelta(hours=2)).isoformat(),
                                         "to": (now + timedelta(hours=1)).isoformat(),
                                         "group_by": ["status"]})
    assert sum(item["executions"] for item in stats["items"]) == 2 * (1 + 2 + 3 + 1)
    assert all(item["p99_ms"] is not None for item in stats["items"])
    StatsReport.model_validate(stats)  # serialized without pydantic: it must still conform


def test_an_unknown_execution_is_404(client: TestClient) -> None:
    response = client.get("/v1/executions/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/service-calls", {"status": "bogus"}, "status"),
        ("/v1/service-calls", {"created_from": "2030-01-02T00:00:00Z",
                               "created_to": "2030-01-01T00:00:00Z"}, "created_to"),
        ("/v1/service-calls", {"cursor": "not-a-cursor"}, "cursor"),
        ("/v1/service-calls", {"limit": 101}, "limit"),
        ("/v1/service-calls", {"sort": "name"}, "sort"),
        ("/v1/executions", {"outcome": "maybe"}, "outcome"),
        ("/v1/stats", {"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, "to"),
        ("/v1/stats", {"from": "2030-01-01T00:00:00Z", "to": "2030-03-01T00:00:00Z",
                       "bucket": "minute"}, "bucket"),
        ("/v1/stats", {"from": "2030-01-01T00:00:00Z", "to": "2030-01-02T00:00:00Z",
                       "group_by": "colour"}, "group_by"),
    ],
)
def test_bad_filter_values_are_422_naming_the_field(
    client: TestClient, path: str, params: dict[str, Any], field: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]]
