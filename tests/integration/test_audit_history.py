"""A call's history as recorded, and its state at past moments, through the HTTP API."""

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from domain.ids import execution_id_for
from harness.api_keys import bearer
from interfaces.api.app import create_app
from tests.support.audit_scenario import TENANT, Scenario, run_audit_scenario
from tests.support.clean_state import container_settings, emptied
from tests.support.read_models import catch_up, reset_read_models

EXPECTED = [
    "ServiceCall.Submitted",
    "ServiceCall.Started", "Execution.Started", "Execution.Failed",
    "ServiceCall.AttemptFailed", "ServiceCall.Scheduled",
    "ServiceCall.Started", "Execution.Started", "Execution.Failed",
    "ServiceCall.AttemptFailed", "ServiceCall.Failed",
    "ServiceCall.RetryRequested", "ServiceCall.Scheduled",
    "ServiceCall.Started", "Execution.Started", "Execution.Succeeded",
    "ServiceCall.Succeeded",
]  # fmt: skip


@pytest.fixture(scope="module")
def client(database_url: str) -> Iterator[TestClient]:
    """A client of the app with an API key of the scenario's tenant, on the emptied session
    database; the tests only read, so they share it."""
    with emptied(database_url), TestClient(create_app(container_settings(database_url))) as client:
        container = client.app.state.container  # type: ignore[attr-defined]
        client.headers.update(bearer(container.tenants.create(TENANT).key))
        yield client


@pytest.fixture(scope="module")
def scenario(client: TestClient) -> Scenario:
    """The audit scenario, recorded once for the module's tests."""
    container = client.app.state.container  # type: ignore[attr-defined]
    reset_read_models(container)  # the events were truncated: so go the read models
    return run_audit_scenario(container)


def _history(client: TestClient, scenario: Scenario) -> list[dict[str, Any]]:
    response = client.get(f"/v1/service-calls/{scenario.call_id}/events")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_history_holds_every_event_of_the_call_and_its_executions_in_recorded_order(
    client: TestClient, scenario: Scenario, database_url: str
) -> None:
    events = _history(client, scenario)

    assert [e["type"] for e in events] == EXPECTED
    positions = [e["position"] for e in events]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps)
    ids = [scenario.call_id, *(execution_id_for(scenario.call_id, n) for n in (1, 2, 3))]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT notification_id FROM duecall_events WHERE originator_id = ANY(%s) "
            "ORDER BY notification_id", (ids,)
        ).fetchall()
    assert positions == [r[0] for r in rows]  # complete: nothing more was recorded for them
    for originator in {e["originator_id"] for e in events}:
        versions = [e["version"] for e in events if e["originator_id"] == originator]
        assert versions == list(range(1, len(versions) + 1))
    assert all(len(e["hash"]) == 64 for e in events)


def test_history_says_why_each_retry_waited_and_redacts_secrets(
    client: TestClient, scenario: Scenario
) -> None:
    events = _history(client, scenario)
    scheduled = [e["payload"] for e in events if e["type"] == "ServiceCall.Scheduled"]
    assert [(s["attempt"], s["reason"], s["scheduled_by"]) for s in scheduled] == [
        (2, "backoff", "duecall"), (3, "manual", "client"),
    ]
    assert scheduled[0]["delay_seconds"] == pytest.approx(0.3)
    assert {e["schema_version"] for e in events if e["type"] == "ServiceCall.Scheduled"} == {2}
    submitted, started = events[0]["payload"], events[2]["payload"]
    assert submitted["headers"] == {"Authorization": "[REDACTED]", "X-Trace": "t-1"}
    assert started["headers"]["Authorization"] == "[REDACTED]"
    failed = events[3]["payload"]
    assert failed["headers"] == {"Set-Cookie": "[REDACTED]", "Content-Type": "text/plain"}
    assert (failed["status_code"], failed["error_kind"]) == (500, "http_error")
    assert events[8]["payload"]["error_kind"] == "timeout"
    assert events[10]["payload"]["reason"] == "attempts_exhausted"


def test_history_streams_as_ndjson(client: TestClient, scenario: Scenario) -> None:
    url = f"/v1/service-calls/{scenario.call_id}/events?format=ndjson"
    response = client.get(url)
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["type"] for line in lines] == EXPECTED
    assert [line["position"] for line in lines] == [e["position"] for e in _history(
        client, scenario)]


def test_another_tenants_call_has_no_history(client: TestClient, scenario: Scenario) -> None:
    container = client.app.state.container  # type: ignore[attr-defined]
    someone_else = bearer(container.tenants.create("someone-else").key)
    url = f"/v1/service-calls/{scenario.call_id}/events"
    assert client.get(url, headers=someone_else).status_code == 404
    url = f"/v1/service-calls/{scenario.call_id}?version=1"
    assert client.get(url, headers=someone_else).status_code == 404


def _then(client: TestClient, scenario: Scenario, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/service-calls/{scenario.call_id}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("moment", "status", "attempt"),
    [
        ("scheduled", "scheduled", 1),
        ("backing_off", "scheduled", 2),
        ("failed", "failed", 2),
        ("retried", "scheduled", 3),
        ("succeeded", "succeeded", 3),
    ],
)
def test_the_call_at_a_moment_is_rebuilt_from_its_events(
    client: TestClient, scenario: Scenario, moment: str, status: str, attempt: int
) -> None:
    then = _then(client, scenario, at=scenario.moments[moment].isoformat())
    assert (then["status"], then["attempt"]) == (status, attempt)


def test_the_call_at_a_version_and_the_limits_of_the_past(
    client: TestClient, scenario: Scenario
) -> None:
    assert _then(client, scenario, version=1)["status"] == "scheduled"
    assert _then(client, scenario, version=2)["status"] == "running"
    latest = _then(client, scenario)
    assert _then(client, scenario, version=latest["version"]) == latest
    url = f"/v1/service-calls/{scenario.call_id}"
    too_far = client.get(url, params={"version": latest["version"] + 1})
    assert too_far.status_code == 404
    assert too_far.json()["detail"] == (
        f"service call {scenario.call_id} has no version {latest['version'] + 1} "
        f"(the latest is {latest['version']})"
    )
    before = scenario.moments["before"]
    early = client.get(url, params={"at": before.isoformat()})
    assert early.status_code == 404
    assert early.headers["content-type"] == "application/problem+json"
    assert early.json()["detail"] == (
        f"service call {scenario.call_id} did not exist yet at {before.isoformat()}"
    )
    naive = client.get(url, params={"at": "2025-01-01T00:00:00"})
    assert naive.status_code == 422


def test_the_call_at_a_version_and_a_moment_is_that_version_if_it_existed_then(
    client: TestClient, scenario: Scenario
) -> None:
    failed = scenario.moments["failed"].isoformat()
    then = _then(client, scenario, at=failed)
    assert _then(client, scenario, at=failed, version=2)["version"] == 2
    assert _then(client, scenario, at=failed, version=then["version"]) == then
    url = f"/v1/service-calls/{scenario.call_id}"
    later = client.get(url, params={"at": failed, "version": then["version"] + 1})
    assert later.status_code == 404
    assert later.json()["detail"] == (
        f"service call {scenario.call_id} had no version {then['version'] + 1} yet at {failed}"
    )


@pytest.mark.parametrize(
    ("moment", "status", "listed"),
    [
        ("backing_off", "scheduled", True),
        ("backing_off", "failed", False),
        ("failed", "failed", True),
        ("retried", "scheduled", True),
        ("succeeded", "succeeded", True),
        ("before", "scheduled", False),
    ],
)
def test_which_calls_were_in_a_status_at_a_moment(
    client: TestClient, scenario: Scenario, moment: str, status: str, listed: bool
) -> None:
    catch_up(client.app.state.container)  # type: ignore[attr-defined]
    params = {"as_of": scenario.moments[moment].isoformat(), "status": status}
    page = client.get("/v1/service-calls", params=params).json()
    assert [item["id"] for item in page["items"]] == ([str(scenario.call_id)] if listed else [])
    assert all(item["status"] == status for item in page["items"])
