"""The workflow run API over real HTTP against a real `duecall serve` (API and workers) on a
real PostgreSQL, its steps calling a real local target: a 2-step run submitted and polled
until it succeeded, data passed from one step to the next; a definition the domain refuses
(a cycle) as a 422 naming the field; an unknown or another tenant's run as a 404; pause and
resume; a command a finished run does not allow as a 409; retry and re-run a step.
"""

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.databases import fresh_database
from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer
from tests.support.problems import assert_problem
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

RUNS = "/v1/workflows/runs"


@pytest.fixture(scope="module")
def duecall_server(server_url: str) -> Iterator[DuecallProcess]:
    """This module's server (overrides the e2e conftest's), on a database of its own."""
    with fresh_database(server_url, prefix="duecall_wf") as url, DuecallProcess(url) as server:
        yield server


def two_steps(target: TargetServer, first: str = "/echo") -> dict[str, Any]:
    """``auth`` then ``charge``, which sends what ``auth``'s response carried."""
    return {
        "name": f"charge-{uuid.uuid4().hex[:6]}",
        "steps": [
            {"id": "auth", "request": {"method": "POST", "url": f"{target.url}{first}",
                                       "body": {"k": "{{ input.key }}"}},
             "outputs": {"method": "$.body.method"}},
            {"id": "charge", "needs": ["auth"],
             "request": {"method": "POST", "url": f"{target.url}/echo",
                         "headers": {"X-Auth": "{{ steps.auth.outputs.method }}"}}},
        ],
    }


def submit(api: httpx.Client, definition: dict[str, Any], **input: Any) -> dict[str, Any]:
    answer = api.post(RUNS, json={"definition": definition, "input": input or None})
    assert answer.status_code == 201, answer.text
    run: dict[str, Any] = answer.json()
    assert answer.headers["location"] == f"{RUNS}/{run['id']}"
    return run


def finished(api: httpx.Client, run_id: str, timeout: float = 20.0) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        run: dict[str, Any] = api.get(f"{RUNS}/{run_id}").json()
        return run if run["status"] in {"succeeded", "failed", "cancelled"} else None

    return wait_until(probe, timeout=timeout, interval=0.1)


def test_a_two_step_run_is_submitted_and_succeeds(
    api: httpx.Client, target: TargetServer
) -> None:
    run = submit(api, two_steps(target), key="abc")
    assert run["status"] in {"pending", "running"}
    assert run["steps"]["auth"]["state"] == "running"
    assert run["steps"]["charge"]["state"] == "pending"
    assert run["counts"]["total"] == 2

    done = finished(api, run["id"])

    assert done["status"] == "succeeded", done
    auth, charge = done["steps"]["auth"], done["steps"]["charge"]
    assert (auth["state"], charge["state"]) == ("succeeded", "succeeded")
    assert auth["status_code"] == charge["status_code"] == 200
    assert auth["idempotency_key"] == f"wf:{run['id']}:auth"
    assert charge["idempotency_key"] == f"wf:{run['id']}:charge"
    assert auth["outputs"]["method"]["value"] == "POST"
    assert auth["duration_seconds"] is not None
    assert done["counts"] == {"total": 2, "succeeded": 2, "failed": 0, "skipped": 0,
                              "cancelled": 0}
    assert done["finished_at"] is not None
    assert done["duration_seconds"] is not None
    # the step's call is an ordinary call of the tenant's, and the data was passed on
    call = api.get(f"/v1/service-calls/{charge['call_id']}")
    assert call.status_code == 200, call.text
    (received,) = [r for r in target.requests_for("/echo")
                   if r.headers.get("x-auth") == "POST"
                   and r.headers.get("idempotency-key", "").startswith(charge["call_id"])]
    assert received.method == "POST"


def test_a_cycle_is_a_422_naming_the_field(api: httpx.Client, target: TargetServer) -> None:
    definition = two_steps(target)
    definition["steps"][0]["needs"] = ["charge"]

    answer = api.post(RUNS, json={"definition": definition})

    problem = assert_problem(answer, 422)
    [error] = problem["errors"]
    assert error["field"].startswith("definition.steps"), problem
    assert "cycle" in error["message"]


def test_a_body_that_is_not_an_object_is_a_422(api: httpx.Client) -> None:
    problem = assert_problem(api.post(RUNS, json={"definition": [1], "extra": 1}), 422)
    assert {e["field"] for e in problem["errors"]} == {"definition", "extra"}


def test_an_unknown_or_another_tenants_run_is_a_404(
    api: httpx.Client, target: TargetServer, as_tenant: Any
) -> None:
    assert_problem(api.get(f"{RUNS}/{uuid.uuid4()}"), 404)
    assert_problem(api.post(f"{RUNS}/{uuid.uuid4()}/pause"), 404)
    run = submit(api, two_steps(target), key="k")

    other = as_tenant("other")
    assert_problem(api.get(f"{RUNS}/{run['id']}", headers=other), 404)
    assert_problem(api.post(f"{RUNS}/{run['id']}/cancel", headers=other), 404)
    finished(api, run["id"])


def test_pause_then_resume(api: httpx.Client, target: TargetServer) -> None:
    run = submit(api, two_steps(target, first="/slow/1"), key="k")
    path = f"{RUNS}/{run['id']}"

    paused = api.post(f"{path}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused"
    assert "x-duecall-position" in paused.headers
    target.wait_for(1, path="/slow/1")
    wait_until(lambda: api.get(path).json()["steps"]["auth"]["state"] == "succeeded",
               timeout=15)
    held = api.get(path).json()
    assert held["status"] == "paused"  # the running step finished; nothing new ordered
    assert held["steps"]["charge"]["state"] == "pending"

    resumed = api.post(f"{path}/resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "running"
    assert finished(api, run["id"])["status"] == "succeeded"


def test_a_finished_run_cannot_be_cancelled_or_paused(
    api: httpx.Client, target: TargetServer
) -> None:
    run = finished(api, submit(api, two_steps(target), key="k")["id"])
    path = f"{RUNS}/{run['id']}"

    problem = assert_problem(api.post(f"{path}/cancel", json={"reason": "late"}), 409)
    assert problem["status_of_run"] == "succeeded"
    assert_problem(api.post(f"{path}/pause"), 409)
    assert_problem(api.post(f"{path}/retry"), 409)  # nothing failed


def test_cancel_a_running_run_with_a_reason(api: httpx.Client, target: TargetServer) -> None:
    run = submit(api, two_steps(target, first="/slow/2"), key="k")

    answer = api.post(f"{RUNS}/{run['id']}/cancel", json={"reason": "changed my mind"})

    assert answer.status_code == 200, answer.text
    cancelled = answer.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancel_reason"] == "changed my mind"
    assert {s["state"] for s in cancelled["steps"].values()} == {"cancelled"}


def test_retry_from_the_failed_step_and_rerun_a_step(
    api: httpx.Client, target: TargetServer
) -> None:
    name = f"wf-{uuid.uuid4().hex[:6]}"
    target.set_sequence(name, [500, 200])
    definition = two_steps(target, first=f"/sequence/{name}")
    # one attempt: the call's own retries would hide the 500
    definition["steps"][0]["retry_policy"] = {"max_attempts": 1}
    run = submit(api, definition, key="k")
    path = f"{RUNS}/{run['id']}"
    failed = finished(api, run["id"])
    assert failed["status"] == "failed", failed
    assert failed["steps"]["auth"]["status_code"] == 500

    retried = api.post(f"{path}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["steps"]["auth"]["generation"] == 2
    done = finished(api, run["id"])
    assert done["status"] == "succeeded", done
    assert done["steps"]["auth"]["idempotency_key"] == f"wf:{run['id']}:auth:r2"

    generation = done["steps"]["charge"]["generation"]
    rerun = api.post(f"{path}/steps/charge/rerun", json={"input": {"key": "new"}})
    assert rerun.status_code == 200, rerun.text
    assert rerun.json()["steps"]["charge"]["input_override"] == {"key": "new"}
    again = finished(api, run["id"])
    assert again["steps"]["charge"]["generation"] == generation + 1
    assert again["steps"]["charge"]["state"] == "succeeded"

    unknown = assert_problem(api.post(f"{path}/steps/nope/rerun", json={}), 422)
    assert unknown["errors"][0]["field"] == "step_id"
