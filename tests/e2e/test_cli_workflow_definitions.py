"""End to end: `duecall workflows validate` and `duecall workflows definitions put|list|show`
against a real server on a real PostgreSQL, and `duecall workflows submit --definition
NAME[@VERSION]` run through to a real target: a stored definition's versions, the same file
put twice, a run of each version; validate's levels, and every problem on its own line."""

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
    key = duecall_server.tenant_key(f"clid-{uuid.uuid4().hex[:8]}")

    def invoke(*args: str, input: str | None = None) -> Result:
        options = ["--url", duecall_server.url, "--api-key", key]
        return CliRunner().invoke(cli.app, ["workflows", *args, *options], input=input)

    return invoke


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _steps(target: TargetServer, *ids: str) -> list[dict[str, Any]]:
    steps, previous = [], None
    for step_id in ids:
        steps.append({"id": step_id, "needs": [previous] if previous else [],
                      "request": {"method": "POST", "url": f"{target.url}/ok",
                                  "body": {"step": step_id}}})
        previous = step_id
    return steps


def test_put_list_show_and_submit_each_version(run: Cli, tmp_path: Path) -> None:
    name = f"cli-def-{uuid.uuid4().hex[:6]}"
    with TargetServer() as target:
        file = tmp_path / "definition.json"
        file.write_text(json.dumps({"steps": _steps(target, "one")}))
        first = run("definitions", "put", name, str(file))
        assert first.exit_code == 0, first.output
        assert f"{name} version 1 (1 steps" in first.output
        assert _json(run("definitions", "put", name, str(file), "--json"))["version"] == 1
        file.write_text(json.dumps({"steps": _steps(target, "one", "two")}))
        assert _json(run("definitions", "put", name, "-", "--json",
                         input=file.read_text()))["version"] == 2

        listed = wait_until(lambda: [i for i in _json(run("definitions", "list", "--json"))
                                     ["items"] if i["name"] == name and i["version"] == 2],
                            timeout=10)
        assert listed[0]["steps"] == 2
        table = run("definitions", "list")
        assert table.exit_code == 0, table.output
        assert name in table.output

        shown = run("definitions", "show", name)
        assert shown.exit_code == 0, shown.output
        assert "version 2" in shown.output
        assert f"POST {target.url}/ok" in shown.output
        old = _json(run("definitions", "show", name, "--version", "1", "--json"))
        assert [s["id"] for s in old["definition"]["steps"]] == ["one"]
        missing = run("definitions", "show", name, "--version", "3")
        assert missing.exit_code != 0
        assert "not found" in missing.output

        newest = _json(run("submit", "--definition", name, "--json"))
        older = _json(run("submit", "--definition", f"{name}@1", "--json"))
        assert (newest["definition_name"], newest["definition_version"]) == (name, 2)
        assert (older["definition_name"], older["definition_version"]) == (name, 1)

        def done(run_id: str) -> dict[str, Any] | None:
            shown: dict[str, Any] = _json(run("show", run_id, "--json"))
            return shown if shown["status"] == "succeeded" else None

        assert wait_until(lambda: done(newest["id"]), timeout=30)["counts"]["succeeded"] == 2
        assert wait_until(lambda: done(older["id"]), timeout=30)["counts"]["succeeded"] == 1
        bodies = sorted(json.loads(r.body)["step"] for r in target.requests_for("/ok"))
        assert bodies == ["one", "one", "two"]


def test_submit_takes_a_file_or_a_stored_definition_not_both(run: Cli, tmp_path: Path) -> None:
    file = tmp_path / "d.json"
    file.write_text("{}")
    for args in (("submit",), ("submit", str(file), "--definition", "x")):
        refused = run(*args)
        assert refused.exit_code != 0
        assert "either a definition FILE or --definition" in refused.output
    bad = run("submit", "--definition", "x@latest")
    assert bad.exit_code != 0
    assert "must be a number" in bad.output
    unknown = run("submit", "--definition", f"never-{uuid.uuid4().hex[:6]}")
    assert unknown.exit_code != 0
    assert "definition_name" in unknown.output


def test_validate_shows_the_levels_or_every_problem(run: Cli, tmp_path: Path) -> None:
    url = "https://e.example/x"
    good = {"name": "fan", "steps": [
        {"id": "a", "request": {"method": "GET", "url": url}},
        {"id": "b", "needs": ["a"], "request": {"method": "GET", "url": url}},
        {"id": "c", "needs": ["a"], "request": {"method": "GET", "url": url}},
    ]}
    file = tmp_path / "good.json"
    file.write_text(json.dumps(good))
    checked = run("validate", str(file))
    assert checked.exit_code == 0, checked.output
    assert "fan: 3 steps, 2 levels" in checked.output
    assert "1: b, c" in checked.output
    assert _json(run("validate", str(file), "--json"))["levels"] == [["a"], ["b", "c"]]

    bad = {"name": "bad", "steps": [
        {"id": "a", "request": {"method": "GET", "url": "https://e.example/{{ input.id }}"}},
        {"id": "b", "needs": ["a"], "request": {"method": "GET", "url": url},
         "outputs": {"v": "$[?"}},
        {"id": "c", "needs": ["a"], "request": {"method": "GET", "url": url},
         "when": "steps.a.status =="},
    ]}
    refused = run("validate", "-", input=json.dumps(bad))
    assert refused.exit_code == 1
    assert "definition.steps[b].outputs.v:" in refused.output
    assert "definition.steps[c].when:" in refused.output
    assert "2 problem(s) in -" in refused.output
    bad["steps"] = bad["steps"][:1]
    file.write_text(json.dumps(bad))
    missing = run("validate", str(file), "--input", "{}")
    assert missing.exit_code == 1
    assert "definition.steps[a].request.url: input.id has no value" in missing.output
    assert run("validate", str(file), "--input", '{"id": 1}').exit_code == 0
    assert "Traceback" not in refused.output + missing.output
