"""How fresh the read models are, through a real `duecall serve`: /readyz reports each one's
lag, a write tells its log position, and a read given it waits until it sees the write."""

from collections.abc import Callable

import httpx
import pytest

from harness.target_server import TargetServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def tenant(as_tenant: Callable[[str], dict[str, str]]) -> dict[str, str]:
    """The headers of requests as the tenant "fresh"."""
    return as_tenant("fresh")


def _call(url: str, **extra: object) -> dict[str, object]:
    return {"name": "fresh", "request": {"method": "GET", "url": url}, **extra}


def test_readiness_reports_each_read_models_position_and_lag(api: httpx.Client) -> None:
    response = api.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"]) == ("ready", "ok")
    by_name = {p["name"]: p for p in body["projections"]}
    assert {"service_calls", "executions", "statistics"} <= set(by_name)
    for p in by_name.values():
        assert 0 <= p["position"] <= p["head"]
        assert p["lag_events"] == p["head"] - p["position"]
        assert p["lag_seconds"] >= 0


def test_a_list_read_with_the_submits_position_includes_the_call(
    api: httpx.Client, target: TargetServer, tenant: dict[str, str]
) -> None:
    submitted = api.post("/v1/service-calls", headers=tenant,
                         json=_call(f"{target.url}/ok", correlation_id="ryw-1"))
    assert submitted.status_code == 201
    position = int(submitted.headers["X-Duecall-Position"])

    page = api.get("/v1/service-calls", headers=tenant,
                   params={"correlation_id": "ryw-1", "min_position": position}).json()
    assert [item["id"] for item in page["items"]] == [submitted.json()["id"]]
    assert page["meta"]["position"] >= position
    assert page["meta"]["stale"] is False


def test_execution_reads_take_the_position_as_a_header_too(
    api: httpx.Client, target: TargetServer, tenant: dict[str, str]
) -> None:
    batch = api.post("/v1/service-calls:batch", headers=tenant,
                     json={"calls": [_call(f"{target.url}/ok"), _call(f"{target.url}/ok")]})
    assert batch.status_code == 201
    position = int(batch.headers["X-Duecall-Position"])
    wanted = {"X-Duecall-Min-Position": str(position), **tenant}
    for path in ("/v1/executions", "/v1/executions/latest"):
        meta = api.get(path, headers=wanted).json()["meta"]
        assert meta["position"] >= position
        assert meta["stale"] is False


def test_a_position_the_log_has_not_reached_answers_at_once_as_stale(
    api: httpx.Client, tenant: dict[str, str]
) -> None:
    head = api.get("/readyz").json()["projections"][0]["head"]
    response = api.get("/v1/service-calls", headers=tenant,
                       params={"min_position": head + 1_000_000})
    assert response.status_code == 200
    assert response.json()["meta"]["stale"] is True
    assert response.elapsed.total_seconds() < 1.0


def test_a_bad_min_position_is_422_naming_it(
    api: httpx.Client, tenant: dict[str, str]
) -> None:
    response = api.get("/v1/executions", headers=tenant, params={"min_position": "soon"})
    assert response.status_code == 422
    assert "min_position" in [error["field"] for error in response.json()["errors"]]
