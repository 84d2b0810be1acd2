"""End to end: `duecall workflows ...` against a real server on a real PostgreSQL and a real
target: submit a definition from a file, show the run as a table and as JSON until it
succeeds, the commands on a finished run refused as one sentence, a bad definition named."""

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer
from interfaces import cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
Cli = Callable[..., Result]


@pytest.fixture(scope="module")
def run(duecall_server: DuecallProcess) -> Cli:
    """`duecall workflows <args> --url <server> --api-key <key>`, in process."""
    key = duecall_server.tenant_key(f"cliw-{uuid.uuid4().hex[:8]}")

    def invoke(*args: str, input: str | None = None) -> Result:
        options = ["--url", duecall_server.url, "--api-key", key]
        return CliRunner().invoke(cli.app, ["workflows", *args, *options], input=input)

    return invoke


def _definition(target: TargetServer) -> dict[str, Any]:
    return {
        "name": "cli-two-steps",
        "steps": [
            {"id": "first", "request": {"method": "GET", "url": f"{target.url}/ok"}},
            {"id": "second", "needs": ["first"],
             "request": {"method": "POST", "url": f"{target.url}/ok",
                         "body": {"who": "{{ input.who }}"}}},
        ],
    }


def _shown(run: Cli, run_id: str) -> dict[str, Any] | None:
    shown = run("show", run_id, "--json")
    assert shown.exit_code == 0, shown.output
    answer: dict[str, Any] = json.loads(shown.output)
    return answer if answer["status"] == "succeeded" else None


def test_submit_from_a_file_then_show_until_it_succeeds(run: Cli, tmp_path: Path) -> None:
    with TargetServer() as target:
        file = tmp_path / "definition.json"
        file.write_text(json.dumps(_definition(target)))
        submitted = run("submit", str(file), "--input", '{"who": "cli"}', "--json")
        assert submitted.exit_code == 0, submitted.output
        run_id = json.loads(submitted.output)["id"]

        done = wait_until(lambda: _shown(run, run_id), timeout=30)
        table = run("show", run_id)
        (second,) = [r for r in target.requests_for("/ok") if r.method == "POST"]

    assert done["counts"] == {"total": 2, "succeeded": 2, "failed": 0, "skipped": 0,
                              "cancelled": 0}
    assert json.loads(second.body) == {"who": "cli"}
    assert table.exit_code == 0, table.output
    assert "cli-two-steps" in table.output
    assert "second" in table.output
    assert "succeeded" in table.output

    refused = run("pause", run_id)
    assert refused.exit_code != 0
    assert "409" in refused.output or "cannot" in refused.output.lower()


def test_a_definition_from_stdin_with_a_cycle_is_one_sentence_naming_the_field(run: Cli) -> None:
    cycle = {"name": "loop", "steps": [
        {"id": "a", "needs": ["b"], "request": {"method": "GET", "url": "http://127.0.0.1:9/"}},
        {"id": "b", "needs": ["a"], "request": {"method": "GET", "url": "http://127.0.0.1:9/"}},
    ]}

    refused = run("submit", "-", input=json.dumps(cycle))

    assert refused.exit_code != 0
    assert "definition.steps" in refused.output
    assert "Traceback" not in refused.output


def test_bad_input_json_is_refused_before_calling_the_api(run: Cli, tmp_path: Path) -> None:
    file = tmp_path / "definition.json"
    file.write_text("{}")

    refused = run("submit", str(file), "--input", "{not json")

    assert refused.exit_code != 0
    assert "--input is not valid JSON" in refused.output
