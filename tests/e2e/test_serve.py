"""End to end: a real `duecall serve` process, a real HTTP target, the HTTP API and the CLI.

One server process serves the whole module (its database is the session's, shared with other
tests), so every test here submits its own calls and only looks at those.
"""

import inspect
import json
import os
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from harness.duecall_process import DuecallProcess
from harness.network import closed_port_url
from harness.processes import REPO_ROOT, duecall_command
from harness.target_server import TargetServer
from interfaces import cli
from tests.support.db_queries import event_count
from tests.support.problems import assert_problem
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.smoke]

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# Failing calls are made once: retries (5xx and network errors retry by default) would only
# make these tests slower. An API that does not know `retry_policy` ignores it.
NO_RETRIES = {"max_attempts": 1}


def submit(
    api: httpx.Client,
    url: str,
    *,
    name: str = "e2e",
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    payload: dict[str, Any] = {
        "name": name,
        "request": {
            "method": "POST",
            "url": url,
            "headers": {"X-Test": "yes"},
            "body": {"hello": "world"},
        },
        **fields,
    }
    return api.post("/v1/service-calls", json=payload, headers=headers)


def submitted(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    call: dict[str, Any] = response.json()
    return call


def wait_terminal(
    api: httpx.Client,
    call_id: str,
    headers: dict[str, str] | None = None,
    timeout: float = 15.0,
) -> dict[str, Any]:

    def terminal() -> dict[str, Any] | None:
        response = api.get(f"/v1/service-calls/{call_id}", headers=headers)
        assert response.status_code == 200, response.text
        call: dict[str, Any] = response.json()
        return call if call["status"] in TERMINAL else None

    return wait_until(terminal, timeout=timeout, interval=0.1)


def executions(api: httpx.Client, call_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/service-calls/{call_id}/executions")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# -- three calls: one succeeds, one gets a 500, one cannot connect ---------------------------


@dataclass(frozen=True)
class Submitted:
    response: httpx.Response
    final: dict[str, Any]

    @property
    def id(self) -> str:
        call_id: str = self.response.json()["id"]
        return call_id


@pytest.fixture(scope="module")
def three_calls(api: httpx.Client, target: TargetServer) -> dict[str, Submitted]:
    responses = {
        "ok": submit(api, f"{target.url}/ok", name="e2e-ok"),
        "http_error": submit(
            api, f"{target.url}/status/500", name="e2e-500", retry_policy=NO_RETRIES
        ),
        "network": submit(api, closed_port_url(), name="e2e-network", retry_policy=NO_RETRIES),
    }
    calls = {key: submitted(response) for key, response in responses.items()}
    return {
        key: Submitted(responses[key], wait_terminal(api, call["id"]))
        for key, call in calls.items()
    }


def test_submit_answers_201_with_location_and_the_call(
    three_calls: dict[str, Submitted], target: TargetServer
) -> None:
    response = three_calls["ok"].response
    call = response.json()

    assert response.status_code == 201
    assert response.headers["location"] == f"/v1/service-calls/{call['id']}"
    assert uuid.UUID(call["id"])
    assert call["name"] == "e2e-ok"
    assert call["tenant_id"] == "default"
    assert call["status"] == "scheduled"
    assert call["attempt"] == 1
    assert call["request"]["method"] == "POST"
    assert call["request"]["url"] == f"{target.url}/ok"
    assert call["request"]["headers"]["X-Test"] == "yes"
    assert json.loads(call["request"]["body"]) == {"hello": "world"}
    assert call["last_status_code"] is None
    assert call["finished_at"] is None


def test_each_call_reaches_its_terminal_outcome(three_calls: dict[str, Submitted]) -> None:
    ok, http_error, network = (three_calls[k].final for k in ("ok", "http_error", "network"))

    assert (ok["status"], ok["last_status_code"], ok["last_error_kind"]) == ("succeeded", 200, None)
    assert (http_error["status"], http_error["last_error_kind"]) == ("failed", "http_error")
    assert http_error["last_status_code"] == 500
    assert (network["status"], network["last_error_kind"]) == ("failed", "network")
    assert network["last_status_code"] is None
    for final in (ok, http_error, network):
        assert final["attempt"] == 1
        assert final["finished_at"] is not None


def test_each_call_has_one_execution_with_its_outcome(
    api: httpx.Client, three_calls: dict[str, Submitted]
) -> None:
    expected = {
        "ok": ("succeeded", 200, None),
        "http_error": ("failed", 500, "http_error"),
        "network": ("failed", None, "network"),
    }
    for key, (outcome, status_code, error_kind) in expected.items():
        call_id = three_calls[key].id
        items = executions(api, call_id)

        assert len(items) == 1, (key, items)
        execution = items[0]
        assert execution["service_call_id"] == call_id
        assert execution["attempt"] == 1
        assert (execution["outcome"], execution["status_code"], execution["error_kind"]) == (
            outcome,
            status_code,
            error_kind,
        ), key
        assert isinstance(execution["duration_ms"], int | float)
        assert execution["duration_ms"] >= 0
        assert execution["finished_at"] is not None


def test_the_target_receives_the_request_as_submitted(
    three_calls: dict[str, Submitted], target: TargetServer
) -> None:
    call_id = three_calls["ok"].id
    received = target.requests_for("/ok")

    assert len(received) == 1
    request = received[0]
    assert request.method == "POST"
    assert request.headers["x-test"] == "yes"
    assert request.headers["content-type"].startswith("application/json")
    assert request.json() == {"hello": "world"}
    assert request.headers["idempotency-key"] == f"{call_id}:1"
    assert len(target.requests_for("/status/500")) == 1


def test_the_server_logs_json_lines_bound_to_the_call(
    three_calls: dict[str, Submitted], duecall_server: DuecallProcess
) -> None:
    call_id = three_calls["ok"].id
    records = []
    for line in duecall_server.log_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))

    about_the_call = [r for r in records if r.get("service_call_id") == call_id]
    assert about_the_call, duecall_server.log_tail()
    assert {r.get("tenant_id") for r in about_the_call} == {"default"}
    assert all({"event", "level", "timestamp"} <= r.keys() for r in records)


# -- scheduling ------------------------------------------------------------------------------


def test_a_delayed_call_is_made_at_its_due_time(api: httpx.Client, target: TargetServer) -> None:
    call = submitted(submit(api, f"{target.url}/delayed", delay_seconds=1))
    due = datetime.fromisoformat(call["due_at"]).timestamp()

    [request] = target.wait_for(1, path="/delayed", timeout=10)

    assert request.received_at >= due, f"made {due - request.received_at:.3f} s early"
    assert request.received_at <= due + 1.0, f"made {request.received_at - due:.3f} s late"
    assert wait_terminal(api, call["id"])["status"] == "succeeded"


# -- validation, not found, tenancy ------------------------------------------------------------

GOOD_REQUEST = {"method": "POST", "url": "http://127.0.0.1:9/hook"}
IN_AN_HOUR = datetime.now(UTC) + timedelta(hours=1)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"request": {**GOOD_REQUEST, "url": "ftp://x"}}, "request.url", id="ftp-url"),
        pytest.param(
            {"request": {**GOOD_REQUEST, "timeout_seconds": 0}},
            "request.timeout_seconds",
            id="zero-timeout",
        ),
        pytest.param(
            {"request": GOOD_REQUEST, "due_at": IN_AN_HOUR.isoformat(), "delay_seconds": 5},
            None,
            id="due-at-and-delay",
        ),
        pytest.param(
            {"request": GOOD_REQUEST, "due_at": IN_AN_HOUR.replace(tzinfo=None).isoformat()},
            "due_at",
            id="naive-due-at",
        ),
        pytest.param(
            {"request": GOOD_REQUEST, "due_at": (IN_AN_HOUR + timedelta(days=400)).isoformat()},
            "due_at",
            id="due-at-too-far",
        ),
        pytest.param({"name": "no-request"}, "request", id="missing-request"),
    ],
)
def test_an_invalid_submit_is_422_naming_the_field_and_records_nothing(
    api: httpx.Client, duecall_server: DuecallProcess, payload: dict[str, Any], field: str | None
) -> None:
    # The server is shared: calls of earlier tests may record events meanwhile. A submit that
    # recorded something would change the count on every try; that noise, rarely twice.
    for _ in range(3):
        before = event_count(duecall_server.database_url)
        response = api.post("/v1/service-calls", json=payload)
        if event_count(duecall_server.database_url) == before:
            break
    else:
        pytest.fail("events were recorded around each of 3 invalid submits")

    problem = assert_problem(response, 422)
    fields = [error["field"] for error in problem["errors"]]
    if field is None:  # a rule across two fields: the message names both
        assert "due_at" in problem["detail"]
        assert "delay_seconds" in problem["detail"]
    else:
        assert field in fields, problem
    assert "location" not in response.headers


def test_an_unknown_id_is_404_and_a_malformed_id_is_422(api: httpx.Client) -> None:
    unknown = uuid.uuid4()

    assert_problem(api.get(f"/v1/service-calls/{unknown}"), 404)
    assert_problem(api.get(f"/v1/service-calls/{unknown}/executions"), 404)
    problem = assert_problem(api.get("/v1/service-calls/not-a-uuid"), 422)
    assert [e["field"] for e in problem["errors"]] == ["service_call_id"]


def test_another_tenants_call_is_404(
    api: httpx.Client, target: TargetServer, as_tenant: Callable[[str], dict[str, str]]
) -> None:
    call = submitted(submit(api, f"{target.url}/tenant-a", headers=as_tenant("a")))
    path = f"/v1/service-calls/{call['id']}"

    assert call["tenant_id"] == "a"
    mine = api.get(path, headers=as_tenant("a"))
    assert mine.status_code == 200
    assert mine.json()["id"] == call["id"]
    assert_problem(api.get(path, headers=as_tenant("b")), 404)
    assert_problem(api.get(f"{path}/executions", headers=as_tenant("b")), 404)
    assert_problem(api.get(path), 404)  # the default tenant is another tenant too
    wait_terminal(api, call["id"], headers=as_tenant("a"))


# -- health --------------------------------------------------------------------------------------


def test_health_and_readiness(api: httpx.Client) -> None:
    healthz = api.get("/healthz")
    readyz = api.get("/readyz")

    assert healthz.status_code == 200
    assert readyz.status_code == 200
    assert readyz.json()["status"] == "ready"  # and the read models' lag: test_freshness.py


# -- the CLI against the running server -------------------------------------------------------


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUECALL_")}
    env["COLUMNS"] = "200"  # rich wraps help text at the terminal width
    return env


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        duecall_command(*args),
        cwd=REPO_ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_cli_submit_and_show(
    duecall_server: DuecallProcess, api: httpx.Client, target: TargetServer
) -> None:
    url = f"{target.url}/cli/{'x' * 120}"  # longer than a terminal line
    key = duecall_server.tenant_key("default")  # another key of `api`'s tenant
    submitted_ = run_cli(
        "submit", url, "--api", duecall_server.url, "--api-key", key, "--json",
        "-H", "X-Test: cli", "--json-body", '{"from": "cli"}', "--name", "e2e-cli",
    )  # fmt: skip
    assert submitted_.returncode == 0, submitted_.stdout + submitted_.stderr
    call = json.loads(submitted_.stdout)
    assert call["name"] == "e2e-cli"
    assert call["request"]["url"] == url
    wait_terminal(api, call["id"])

    shown = run_cli("show", call["id"], "--api", duecall_server.url, "--api-key", key, "--json")

    assert shown.returncode == 0, shown.stdout + shown.stderr
    state = json.loads(shown.stdout)
    assert state["id"] == call["id"]
    assert state["status"] == "succeeded"
    assert [e["outcome"] for e in state["executions"]] == ["succeeded"]
    [request] = target.requests_for(f"/cli/{'x' * 120}")
    assert request.headers["x-test"] == "cli"
    assert request.json() == {"from": "cli"}


def test_cli_show_of_an_unknown_id_fails(duecall_server: DuecallProcess) -> None:
    key = duecall_server.tenant_key("default")
    shown = run_cli("show", str(uuid.uuid4()), "--api", duecall_server.url, "--api-key", key)

    assert shown.returncode == 1
    assert "not found" in (shown.stdout + shown.stderr).lower()


# What the commands the brief names must say they do; any other command must say something.
HELP = {
    "serve": "Run the API and the workers in one process",
    "api": "Run the HTTP API only",
    "worker": "Run the workers only",
    "submit": "Submit a service call",
    "show": "Show a call's current state",
}


def cli_commands() -> dict[str, str]:
    """Every registered `duecall` command and the first line of its help ('' if none)."""
    commands: dict[str, str] = {}
    for info in cli.app.registered_commands:
        assert info.callback is not None
        name = info.name or info.callback.__name__.replace("_", "-")
        commands[name] = next(iter((inspect.getdoc(info.callback) or "").splitlines()), "")
    return commands


def test_cli_has_the_documented_commands() -> None:
    assert set(HELP) <= set(cli_commands())


def test_cli_help_as_a_user_runs_it() -> None:
    """`duecall --help` in a fresh process: exits 0 and lists every command with its purpose."""
    result = run_cli("--help")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "durable scheduled HTTP calls" in result.stdout
    for name, summary in cli_commands().items():
        assert name in result.stdout
        assert summary[:40] in result.stdout, name


@pytest.mark.parametrize("command", sorted(cli_commands()))
def test_cli_help_for_each_command(command: str) -> None:
    summary = cli_commands()[command]

    result = CliRunner().invoke(cli.app, [command, "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert summary, f"`duecall {command}` has no help text"
    assert summary in result.output
    assert HELP.get(command, summary) in result.output
