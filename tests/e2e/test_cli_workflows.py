"""End to end: `duecall workflows ...` against a real server on a real PostgreSQL and a real
target: submit a definition from a file, show the run as a table and as JSON until it
succeeds, the commands on a finished run refused as one sentence, a bad definition named;
list runs (filters, pages), show a name's latest run, re-run a step with edited input."""

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
from interfaces.cli_support import console
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


def _listed(run: Cli, *args: str) -> list[dict[str, Any]]:
    listed = run("list", *args, "--json")
    assert listed.exit_code == 0, listed.output
    items: list[dict[str, Any]] = json.loads(listed.output)["items"]
    return items


def test_list_latest_and_rerun_a_step_with_edited_input(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "_width", 250)  # the tables' cells whole, whatever COLUMNS
    name = f"cli-list-{uuid.uuid4().hex[:6]}"
    with TargetServer() as target:
        file = tmp_path / "definition.json"
        file.write_text(json.dumps({**_definition(target), "name": name}))
        ids = []
        for who in ("one", "two"):
            submitted = run("submit", str(file), "--input", json.dumps({"who": who}), "--json")
            assert submitted.exit_code == 0, submitted.output
            ids.append(json.loads(submitted.output)["id"])
        first, second = ids

        def both_listed_done() -> list[dict[str, Any]] | None:
            items = _listed(run, "--name", name)
            return items if [i["status"] for i in items] == ["succeeded"] * 2 else None

        items = wait_until(both_listed_done, timeout=30)
        assert [i["id"] for i in items] == [second, first]  # newest first
        assert items[0]["counts"]["succeeded"] == 2
        table = run("list", "--name", name)
        assert table.exit_code == 0, table.output
        assert first in table.output
        assert second in table.output
        assert "2/2 succeeded" in table.output
        assert "position" in table.output  # how fresh the read model is

        assert [i["id"] for i in _listed(run, "--name", name, "--status",
                                         "failed,succeeded", "--since", "1h")] == [second, first]
        assert _listed(run, "--name", name, "--status", "failed") == []
        assert _listed(run, "--name", name, "--until", "1h") == []
        paged = run("list", "--name", name, "--limit", "1")
        assert "more: --cursor" in paged.output
        cursor = paged.output.split("--cursor", 1)[1].split()[0]
        assert [i["id"] for i in _listed(run, "--name", name, "--limit", "1",
                                         "--cursor", cursor)] == [first]

        latest = run("latest", name, "--json")
        assert latest.exit_code == 0, latest.output
        shown = json.loads(latest.output)
        assert (shown["id"], shown["status"]) == (second, "succeeded")
        assert set(shown["steps"]) == {"first", "second"}  # the whole run, as `show`
        latest_table = run("latest", name)
        assert latest_table.exit_code == 0, latest_table.output
        assert second in latest_table.output

        rerun = run("rerun", second, "second", "--input", '{"who": "again"}', "--json")
        assert rerun.exit_code == 0, rerun.output
        assert json.loads(rerun.output)["steps"]["second"]["input_override"] == {"who": "again"}
        again = wait_until(
            lambda: (r := _shown(run, second)) and r["steps"]["second"]["generation"] == 2 and r,
            timeout=30,
        )
        posted = [json.loads(r.body) for r in target.requests_for("/ok") if r.method == "POST"]

    assert again["steps"]["second"]["state"] == "succeeded"
    assert posted.count({"who": "again"}) == 1
    unknown_step = run("rerun", second, "nope")
    assert unknown_step.exit_code != 0
    assert "step_id" in unknown_step.output


def test_list_latest_and_rerun_refusals_are_one_sentence(run: Cli) -> None:
    nobody = run("latest", f"nobody-{uuid.uuid4().hex[:6]}")
    assert nobody.exit_code != 0
    assert "no workflow run named" in nobody.output
    bad_input = run("rerun", str(uuid.uuid4()), "a", "--input", "{not json")
    assert "--input is not valid JSON" in bad_input.output
    unknown_run = run("rerun", str(uuid.uuid4()), "a")
    assert "not found" in unknown_run.output
    bad_status = run("list", "--status", "sleeping")
    assert "status" in bad_status.output
    bad_since = run("list", "--since", "last week")
    assert "neither a duration" in bad_since.output
    for refused in (nobody, bad_input, unknown_run, bad_status, bad_since):
        assert refused.exit_code != 0
        assert "Traceback" not in refused.output
