"""End to end: `duecall workflows show RUN --events` against a real server on a real
PostgreSQL and a real target: a run whose first step was retried (two attempts, the failed
one with its status, under the step) and whose last step failed on a long `success`
expression (its line cut, one line), then compensated; `--json` prints the API's answer,
every page of it (the command pages through a run longer than a page)."""

import json
import uuid
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer
from interfaces import cli, cli_workflow_events
from interfaces.cli_support import console
from tests.e2e.test_cli_workflows import Cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

LONG_SUCCESS = " or ".join(f"status == {code}" for code in range(201, 231))


@pytest.fixture(scope="module")
def run(duecall_server: DuecallProcess) -> Cli:
    """`duecall workflows <args>` as a tenant of this module's own, in process."""
    options = ["--url", duecall_server.url,
               "--api-key", duecall_server.tenant_key(f"clie-{uuid.uuid4().hex[:8]}")]
    return lambda *args, input=None: CliRunner().invoke(
        cli.app, ["workflows", *args, *options], input=input
    )


def _finished(run: Cli, run_id: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        shown: dict[str, Any] = json.loads(run("show", run_id, "--json").output)
        return shown if shown["finished_at"] else None

    return wait_until(probe, timeout=30, interval=0.2)


def _definition(target: TargetServer, flaky: str) -> dict[str, Any]:
    return {
        "name": f"cli-events-{uuid.uuid4().hex[:6]}",
        "on_failure": "compensate",
        "steps": [
            {"id": "reserve",
             "request": {"method": "POST", "url": f"{target.url}/sequence/{flaky}"},
             "retry_policy": {"max_attempts": 3, "initial_backoff_seconds": 0.05,
                              "jitter": "none"},
             "compensate": {"method": "POST", "url": f"{target.url}/ok"}},
            {"id": "confirm", "needs": ["reserve"], "success": LONG_SUCCESS,
             "request": {"method": "POST", "url": f"{target.url}/ok"}},
        ],
    }


def test_show_events_prints_the_timeline_and_each_steps_attempts(
    run: Cli, target: TargetServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "_width", 250)  # whole lines, whatever COLUMNS
    flaky = f"cli-events-{uuid.uuid4().hex[:6]}"
    target.set_sequence(flaky, [503, 200])
    submitted = run("submit", "-", "--json", input=json.dumps(_definition(target, flaky)))
    assert submitted.exit_code == 0, submitted.output
    run_id = json.loads(submitted.output)["id"]
    done = _finished(run, run_id)
    assert (done["status"], done["compensation"]) == ("failed", "compensated"), done

    shown = run("show", run_id, "--events")

    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert "events: 8" in shown.output
    started = [line for line in lines if "reserve started (generation 1)" in line]
    assert len(started) == 1
    assert "v2" in started[0]
    [failed] = [line.rstrip() for line in lines if "confirm failed (200)" in line]
    assert failed.endswith("…")  # cut, on one line
    assert len(failed.split("confirm failed", 1)[1]) < 120
    assert any("run failed, halted by confirm, compensated" in line for line in lines)
    # under "reserve": its call's two attempts, then its compensation's one
    reserve = lines.index("  reserve")
    attempts = [line.strip() for line in lines[reserve:] if "attempt " in line]
    assert attempts[0].startswith("attempt 1  failed  503 http_error")
    assert attempts[1].startswith("attempt 2  succeeded  200")
    assert any(line.strip().startswith("compensation, generation 1: call")
               for line in lines[reserve:])
    assert lines.index("  confirm") > reserve

    as_json = run("show", run_id, "--events", "--json")
    assert as_json.exit_code == 0, as_json.output
    answer = json.loads(as_json.output)
    assert answer["run_id"] == run_id
    assert [i["version"] for i in answer["items"]] == list(range(1, 9))
    assert [len(c["attempts"]) for c in answer["steps"]["reserve"]] == [2, 1]


def test_show_events_pages_through_a_longer_run(
    run: Cli, target: TargetServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_workflow_events, "PAGE", 3)
    flaky = f"cli-pages-{uuid.uuid4().hex[:6]}"
    target.set_sequence(flaky, [503, 200])
    submitted = run("submit", "-", "--json", input=json.dumps(_definition(target, flaky)))
    run_id = json.loads(submitted.output)["id"]
    _finished(run, run_id)

    answer = json.loads(run("show", run_id, "--events", "--json").output)

    assert [i["version"] for i in answer["items"]] == list(range(1, 9))
    assert answer["next_after"] is None
    assert [c["purpose"] for c in answer["steps"]["reserve"]] == ["step", "compensation"]

