"""`GET /v1/workflows/runs/{id}/events` over real HTTP against a real `duecall serve` (API and
workers) on a real PostgreSQL, the steps calling a real local target: a run whose first step
is retried (its call has 2 attempts, the failed one with its status) paged by version; a run
that fails and is compensated (a step with two calls: its own and its compensation); secret
values never shown; another tenant's run and bad parameters as problem documents.
"""

import uuid
from typing import Any

import httpx
import pytest

from harness.target_server import TargetServer
from tests.e2e.test_workflow_api import finished
from tests.support.problems import assert_problem

pytestmark = pytest.mark.e2e

RUNS = "/v1/workflows/runs"
QUICK_RETRY = {"max_attempts": 3, "initial_backoff_seconds": 0.05, "jitter": "none"}


def submit(api: httpx.Client, definition: dict[str, Any], **input: Any) -> str:
    answer = api.post(RUNS, json={"definition": definition, "input": input or None})
    assert answer.status_code == 201, answer.text
    run_id: str = answer.json()["id"]
    return run_id


def events(api: httpx.Client, run_id: str, **params: Any) -> dict[str, Any]:
    answer = api.get(f"{RUNS}/{run_id}/events", params=params)
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


def kinds(page: dict[str, Any]) -> list[str]:
    return [item["type"].removeprefix("WorkflowRun.") for item in page["items"]]


def test_a_retried_step_shows_both_attempts_and_the_events_page_by_version(
    api: httpx.Client, target: TargetServer
) -> None:
    flaky = f"events-{uuid.uuid4().hex[:6]}"
    target.set_sequence(flaky, [500, 200])
    definition = {
        "name": f"events-{uuid.uuid4().hex[:6]}",
        "steps": [
            {"id": "auth", "request": {"method": "POST", "url": f"{target.url}/sequence/{flaky}"},
             "retry_policy": QUICK_RETRY},
            {"id": "charge", "needs": ["auth"],
             "request": {"method": "POST", "url": f"{target.url}/echo"}},
        ],
    }
    run_id = submit(api, definition)
    run = finished(api, run_id)
    assert run["status"] == "succeeded", run

    whole = events(api, run_id)

    assert whole["run_id"] == run_id
    assert kinds(whole) == ["Created", "StepStarted", "StepSucceeded", "StepStarted",
                            "StepSucceeded", "Succeeded"]
    assert [item["version"] for item in whole["items"]] == [1, 2, 3, 4, 5, 6]
    assert all(item["timestamp"] and item["originator_id"] == run_id for item in whole["items"])
    assert whole["items"][1]["payload"]["step"] == "auth"
    assert whole["items"][2]["payload"]["status_code"] == 200
    assert whole["next_after"] is None
    [auth] = whole["steps"]["auth"]
    assert auth["call_id"] == run["steps"]["auth"]["call_id"]
    assert (auth["purpose"], auth["generation"]) == ("step", 1)
    assert auth["idempotency_key"] == f"wf:{run_id}:auth"
    first, second = auth["attempts"]
    assert (first["attempt"], first["outcome"], first["status_code"], first["error_kind"]) == (
        1, "failed", 500, "http_error")
    assert (second["attempt"], second["outcome"], second["status_code"]) == (2, "succeeded", 200)
    assert first["started_at"] <= first["finished_at"] <= second["started_at"]
    [charge] = whole["steps"]["charge"]
    assert [a["outcome"] for a in charge["attempts"]] == ["succeeded"]
    assert whole["attempts_meta"]["projection"] == "executions"
    assert not whole["attempts_meta"]["stale"]

    # pages of 2: each call's attempts on the page whose event ordered it
    pages = [events(api, run_id, limit=2)]
    while pages[-1]["next_after"] is not None:
        pages.append(events(api, run_id, limit=2, after=pages[-1]["next_after"]))
    assert [p["next_after"] for p in pages] == [2, 4, None]
    assert [i for p in pages for i in p["items"]] == whole["items"]
    assert [sorted(p["steps"]) for p in pages] == [["auth"], ["charge"], []]
    assert pages[0]["steps"]["auth"][0]["attempts"] == auth["attempts"]
    assert pages[2]["attempts_meta"] is None  # no call ordered there
    assert events(api, run_id, after=6)["items"] == []


def test_a_compensated_run_shows_the_step_and_its_compensation(
    api: httpx.Client, target: TargetServer
) -> None:
    definition = {
        "name": f"refund-{uuid.uuid4().hex[:6]}",
        "on_failure": "compensate",
        "steps": [
            {"id": "charge", "request": {"method": "POST", "url": f"{target.url}/echo"},
             "compensate": {"method": "POST", "url": f"{target.url}/status/204"}},
            {"id": "ship", "needs": ["charge"], "retry_policy": {"max_attempts": 1},
             "request": {"method": "POST", "url": f"{target.url}/status/500"}},
        ],
    }
    run_id = submit(api, definition)
    run = finished(api, run_id)
    assert (run["status"], run["compensation"]) == ("failed", "compensated"), run

    page = events(api, run_id)

    assert kinds(page) == ["Created", "StepStarted", "StepSucceeded", "StepStarted",
                           "StepFailed", "CompensationStarted", "Compensated", "Failed"]
    assert page["items"][4]["payload"]["reason"] == "status 500 is not a success"
    assert page["items"][-1]["payload"]["compensation"] == "compensated"
    step, compensation = page["steps"]["charge"]
    assert (step["purpose"], compensation["purpose"]) == ("step", "compensation")
    assert compensation["call_id"] == run["compensations"]["charge"]["call_id"]
    assert compensation["idempotency_key"] == f"wf:{run_id}:charge:compensate"
    assert [(a["outcome"], a["status_code"]) for a in compensation["attempts"]] == [
        ("succeeded", 204)]
    [ship] = page["steps"]["ship"]
    assert [(a["outcome"], a["status_code"], a["error_kind"]) for a in ship["attempts"]] == [
        ("failed", 500, "http_error")]


def test_secret_values_are_redacted_as_in_the_run(
    api: httpx.Client, target: TargetServer
) -> None:
    secret, literal = f"in-{uuid.uuid4().hex}", f"lit-{uuid.uuid4().hex}"
    definition = {
        "name": f"secret-{uuid.uuid4().hex[:6]}",
        "secret_input": ["password"],
        "steps": [
            {"id": "token", "request": {"method": "POST", "url": f"{target.url}/token",
                                        "headers": {"Authorization": f"Bearer {literal}"}},
             "outputs": {"token": {"path": "$.body.token", "secret": True}}},
        ],
    }
    run_id = submit(api, definition, password=secret)
    run = finished(api, run_id)
    assert run["status"] == "succeeded", run
    assert run["input"]["password"] == run["steps"]["token"]["outputs"]["token"]["value"] == (
        "[REDACTED]")

    answer = api.get(f"{RUNS}/{run_id}/events")

    assert answer.status_code == 200, answer.text
    for hidden in (secret, literal, *target.issued_tokens, "enc:v1:"):
        assert hidden not in answer.text
    created, *_, succeeded, _ = answer.json()["items"]
    assert created["payload"]["input"]["password"] == "[REDACTED]"
    assert succeeded["payload"]["outputs"]["token"]["value"] == "[REDACTED]"


def test_another_tenants_or_an_unknown_run_is_a_404(
    api: httpx.Client, target: TargetServer, as_tenant: Any
) -> None:
    definition = {"name": "mine", "steps": [
        {"id": "a", "request": {"method": "GET", "url": f"{target.url}/echo"}}]}
    run_id = submit(api, definition)

    assert_problem(api.get(f"{RUNS}/{run_id}/events", headers=as_tenant("other")), 404)
    assert_problem(api.get(f"{RUNS}/{uuid.uuid4()}/events"), 404)
    assert events(api, run_id)["items"][0]["type"] == "WorkflowRun.Created"


@pytest.mark.parametrize(("params", "field"), [
    ({"after": -1}, "after"),
    ({"after": "x"}, "after"),
    ({"after": 2**63}, "after"),
    ({"limit": 0}, "limit"),
    ({"limit": 101}, "limit"),
])
def test_bad_parameters_are_a_422_naming_the_field(
    api: httpx.Client, params: dict[str, Any], field: str
) -> None:
    problem = assert_problem(api.get(f"{RUNS}/{uuid.uuid4()}/events", params=params), 422)
    assert [e["field"] for e in problem["errors"]] == [field]


def test_a_run_id_that_is_no_uuid_is_a_422(api: httpx.Client) -> None:
    problem = assert_problem(api.get(f"{RUNS}/not-a-run/events"), 422)
    assert [e["field"] for e in problem["errors"]] == ["run_id"]
