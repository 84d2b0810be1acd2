"""Schedules that start workflow runs, over real HTTP against a real `duecall serve` (API and
workers) on a real PostgreSQL: `POST /v1/schedules` with a `workflow` instead of a `call`
(exactly one: 422 naming the field otherwise; a bad definition: 422 naming its field),
GET shows it (secrets redacted), runs fire every second and are listed among the fires,
a trigger starts a run now; and `duecall schedules` creates, shows and triggers one."""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from harness.databases import fresh_database
from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer
from interfaces import cli
from tests.support.problems import assert_problem
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

YEARLY = {"cron": "0 0 1 1 *"}  # fires on 1 January only: never while a test runs


@pytest.fixture(scope="module")
def duecall_server(server_url: str) -> Iterator[DuecallProcess]:
    """This module's server (overrides the e2e conftest's), on a database of its own."""
    with fresh_database(server_url, prefix="duecall_schedwf") as url, DuecallProcess(url) as server:
        yield server


def definition(target: TargetServer) -> dict[str, Any]:
    return {
        "name": "nightly-export",
        "steps": [
            {"id": "export", "request": {
                "method": "POST", "url": f"{target.url}/ok",
                "headers": {"Authorization": "Bearer top-secret-token"}}},
            {"id": "notify", "needs": ["export"], "request": {
                "method": "POST", "url": f"{target.url}/echo", "body": "{{ input.team }}"}},
        ],
    }


def body(target: TargetServer, spec: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "name": f"runs-{uuid.uuid4().hex[:6]}",
        "spec": dict(YEARLY) if spec is None else spec,
        "workflow": {"definition": definition(target), "input": {"team": "ops"}},
        **fields,
    }


def fields_of(answer: httpx.Response) -> list[str]:
    problem = assert_problem(answer, 422)
    return [error["field"] for error in problem["errors"]]


def test_a_workflow_schedule_is_created_and_shown_with_secrets_redacted(
    api: httpx.Client, target: TargetServer
) -> None:
    answer = api.post("/v1/schedules", json=body(target))

    assert answer.status_code == 201, answer.text
    schedule = answer.json()
    assert schedule["call"] is None
    assert schedule["workflow"]["input"] == {"team": "ops"}
    shown = api.get(f"/v1/schedules/{schedule['id']}").json()
    assert shown["workflow"] == schedule["workflow"]
    step = shown["workflow"]["definition"]["steps"][0]
    assert step["request"]["headers"]["Authorization"] == "[REDACTED]"
    assert "top-secret-token" not in answer.text
    events = api.get(f"/v1/schedules/{schedule['id']}/events").text
    assert "top-secret-token" not in events  # sealed at rest, redacted when shown


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"call": {"request": {"url": "https://a.example"}}}, "workflow"),  # both given
        ({"workflow": None}, "call"),  # neither
        ({"workflow": {"definition": {"name": "x", "steps": []}}}, "workflow.definition.steps"),
        ({"workflow": {"definition": {"name": "x", "steps": [
            {"id": "a", "needs": ["b"], "request": {"method": "GET", "url": "https://a.example"}},
        ]}}}, "workflow.definition.steps[a].needs"),
        ({"workflow": {"definition": {"name": "x", "steps": [
            {"id": "a", "request": {"method": "GET", "url": "ftp://a.example"}},
        ]}}}, "workflow.definition.steps[a].request.url"),
        ({"workflow": {"input": {}}}, "workflow.definition"),
        ({"workflow": {"definition": {}, "colour": 1}}, "workflow.colour"),
    ],
)
def test_a_bad_workflow_template_is_422_naming_its_field(
    api: httpx.Client, target: TargetServer, change: dict[str, Any], field: str
) -> None:
    given = {**body(target), **change}
    if given.get("workflow") is None:
        given.pop("workflow")
    assert fields_of(api.post("/v1/schedules", json=given)) == [field]


def test_runs_fire_every_second_and_are_the_schedules_fires(
    api: httpx.Client, target: TargetServer
) -> None:
    answer = api.post("/v1/schedules", json=body(target, {"interval_seconds": 1}))
    assert answer.status_code == 201, answer.text
    path = f"/v1/schedules/{answer.json()['id']}"

    wait_until(lambda: api.get(path).json()["counts"]["succeeded"] >= 2, timeout=15)
    api.post(f"{path}/pause")

    fires = api.get(f"{path}/fires").json()["items"]
    done = [f for f in fires if f["run_status"] == "succeeded"]
    assert len(done) >= 2
    for fire in fires:
        assert fire["call_id"] is None
        assert fire["idempotency_key"].startswith(f"sched:{answer.json()['id']}:")
    run = api.get(f"/v1/workflows/runs/{done[0]['run_id']}").json()
    assert run["status"] == "succeeded"
    assert run["origin"] == f"schedule:{answer.json()['id']}"
    assert run["idempotency_key"] == done[0]["idempotency_key"]
    assert run["input"] == {"team": "ops"}
    assert run["steps"]["notify"]["state"] == "succeeded"
    notified = [r for r in target.requests_for("/echo") if r.body == b"ops"]
    assert len(notified) >= 2


def test_trigger_starts_a_run_now(api: httpx.Client, target: TargetServer) -> None:
    schedule = api.post("/v1/schedules", json=body(target)).json()
    path = f"/v1/schedules/{schedule['id']}"

    answer = api.post(f"{path}/trigger")

    assert answer.status_code == 201, answer.text
    started = answer.json()
    assert started["call"] is None
    run = started["run"]
    assert answer.headers["location"] == f"/v1/workflows/runs/{run['id']}"
    assert run["idempotency_key"] == f"sched:{schedule['id']}:trigger:{run['id']}"
    wait_until(lambda: api.get(f"/v1/workflows/runs/{run['id']}").json()["status"]
               == "succeeded", timeout=15)
    wait_until(lambda: api.get(path).json()["counts"]["succeeded"] == 1, timeout=10)
    (fire,) = api.get(f"{path}/fires").json()["items"]
    assert (fire["kind"], fire["run_id"], fire["run_status"]) == ("trigger", run["id"],
                                                                   "succeeded")

    # the dashboard's page of the schedule shows the workflow and links the fire to its run
    page = api.get(f"/ui/parts/schedules/{schedule['id']}")
    assert page.status_code == 200, page.text
    assert "a run of workflow" in page.text
    assert f'href="/ui/workflows/runs/{run["id"]}"' in page.text
    assert "top-secret-token" not in page.text


def test_a_backfill_starts_a_run_per_time_never_fired(
    api: httpx.Client, target: TargetServer
) -> None:
    schedule = api.post("/v1/schedules", json=body(target, {"cron": "0 * * * *"})).json()
    path = f"/v1/schedules/{schedule['id']}"
    window = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T02:00:00Z"}

    answer = api.post(f"{path}/backfill", json=window)

    assert answer.status_code == 200, answer.text
    done = answer.json()
    assert done["calls"] == []
    assert [r["nominal"][:19] for r in done["runs"]] == [
        "2026-01-01T00:00:00", "2026-01-01T01:00:00", "2026-01-01T02:00:00"]
    assert [i["run_id"] for i in done["items"]] == [r["id"] for r in done["runs"]]
    again = api.post(f"{path}/backfill", json=window).json()  # each time started once
    assert (again["items"], again["runs"]) == ([], [])


def test_patch_turns_a_call_schedule_into_a_workflow_schedule(
    api: httpx.Client, target: TargetServer
) -> None:
    call = {"request": {"url": f"{target.url}/ok"}}
    created = api.post("/v1/schedules", json={**body(target), "workflow": None, "call": call})
    assert created.status_code == 201, created.text
    path = f"/v1/schedules/{created.json()['id']}"

    both = api.patch(path, json={"call": call, "workflow": {"definition": definition(target)}})
    assert fields_of(both) == ["workflow"]
    answer = api.patch(path, json={"workflow": {"definition": definition(target)}})

    assert answer.status_code == 200, answer.text
    assert answer.json()["call"] is None
    assert answer.json()["workflow"]["definition"]["name"] == "nightly-export"


def test_the_cli_creates_one_from_a_file_shows_it_and_triggers_a_run(
    duecall_server: DuecallProcess, target: TargetServer, tmp_path: Path
) -> None:
    key = duecall_server.tenant_key(f"cliwf-{uuid.uuid4().hex[:8]}")

    def duecall(*args: str) -> Result:
        options = ["--url", duecall_server.url, "--api-key", key]
        result = CliRunner().invoke(cli.app, ["schedules", *args, *options])
        assert result.exit_code == 0, result.output
        return result

    file = tmp_path / "schedule.json"
    file.write_text(json.dumps(body(target)))
    created = json.loads(duecall("create", "-f", str(file), "--json").stdout)
    assert created["workflow"]["definition"]["name"] == "nightly-export"
    sid = created["id"]
    assert "workflow run of nightly-export (2 steps)" in duecall("show", sid).stdout
    assert "started run" in duecall("trigger", sid).stdout

    def fires() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(duecall("fires", sid, "--json").stdout)["items"]
        return items

    wait_until(lambda: fires()[0]["run_status"] == "succeeded", timeout=15)
    assert fires()[0]["run_id"] in duecall("fires", sid).stdout  # its column is never cut
