"""End to end: the client commands of the `duecall` CLI against a real server — submitting many
calls from a file or stdin, list/show/stats for people and for scripts (--json), and errors
as one sentence (never a traceback, unless --debug)."""

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from domain.request import DEFAULT_MAX_BODY_BYTES
from harness.duecall_process import DuecallProcess
from harness.network import free_port
from harness.processes import REPO_ROOT, duecall_command
from harness.target_server import TargetServer
from interfaces import cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
ANSI = "\x1b["
Cli = Callable[..., Result]


@pytest.fixture(scope="module")
def key(duecall_server: DuecallProcess) -> str:
    """An API key of a tenant of its own (so counts are this module's)."""
    return duecall_server.tenant_key(f"cli-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def run(duecall_server: DuecallProcess, key: str) -> Cli:
    """`duecall <args> --url <server> --api-key <key>`, in process; ``input`` is stdin."""

    def invoke(*args: str, input: str | None = None) -> Result:
        options = ["--url", duecall_server.url, "--api-key", key]
        return CliRunner().invoke(cli.app, [*args, *options], input=input)

    return invoke


def run_piped(*args: str) -> subprocess.CompletedProcess[str]:
    """`duecall <args>` as a separate process whose stdout and stderr are pipes."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(REPO_ROOT)}  # no COLUMNS, no FORCE_COLOR
    return subprocess.run(duecall_command(*args), cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=30, check=False)


def total(api: httpx.Client, key: str, name: str) -> int:
    answer = api.get("/v1/service-calls", params={"name": name, "include_total": "true"},
                     headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    count: int = answer.json()["total"]
    return count


def calls(name: str, count: int, url: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": name, "request": {"url": url}, **extra} for _ in range(count)]


def one_sentence(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    return line


# -- submit many ---------------------------------------------------------------------------------


def test_submit_from_a_file_sends_batches_of_1000_and_records_every_call(
    run: Cli, api: httpx.Client, key: str, target: TargetServer, tmp_path: Path
) -> None:
    name = f"bulk-{uuid.uuid4().hex[:8]}"
    file = tmp_path / "calls.json"
    file.write_text(json.dumps(calls(name, 2500, f"{target.url}/ok", delay_seconds=3600)))

    result = run("submit", "-f", str(file), "--json")

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["submitted"], summary["created"], summary["batches"]) == (2500, 2500, 3)
    assert len({item["id"] for item in summary["items"]}) == 2500
    assert wait_until(lambda: total(api, key, name) == 2500, timeout=15)


def test_submit_reads_ndjson_from_stdin_and_says_what_it_did(
    run: Cli, api: httpx.Client, key: str, target: TargetServer
) -> None:
    name = f"stdin-{uuid.uuid4().hex[:8]}"
    lines = "\n".join(json.dumps(c) for c in calls(name, 3, f"{target.url}/ok")) + "\n\n"

    result = run("submit", "-f", "-", input=lines)

    assert result.exit_code == 0, result.output
    assert "submitted 3 calls from stdin in 1 batch (3 new" in result.stdout
    assert wait_until(lambda: total(api, key, name) == 3, timeout=10)


def test_a_bad_item_is_named_with_its_field_and_nothing_is_recorded(
    run: Cli, api: httpx.Client, key: str, target: TargetServer
) -> None:
    name = f"bad-{uuid.uuid4().hex[:8]}"
    items = calls(name, 5, f"{target.url}/ok")
    del items[3]["request"]["url"]
    lines = "\n".join(json.dumps(item) for item in items)

    error = one_sentence(run("submit", "-f", "-", input=lines))

    assert error == ("error: item 4 of stdin (line 4): request.url: Field required; "
                     "nothing was submitted")
    broken = lines.replace('"name"', '"name', 1)
    assert "item 1 of stdin (line 1) is not valid JSON" in one_sentence(
        run("submit", "-f", "-", input=broken))
    assert total(api, key, name) == 0


def test_an_item_the_server_refuses_is_named_and_earlier_batches_are_reported(
    run: Cli, target: TargetServer
) -> None:
    items = calls("big", 3, f"{target.url}/ok", delay_seconds=3600)
    too_large = DEFAULT_MAX_BODY_BYTES + 1  # the server's limit: 413 for the item's batch
    items[2]["request"]["body"] = "x" * too_large
    lines = "\n".join(json.dumps(item) for item in items)

    error = one_sentence(run("submit", "-f", "-", "--batch-size", "2", input=lines))

    assert error.startswith(f"error: item 3 of stdin (line 3): request.body: is {too_large} bytes")
    assert "the 2 calls before this batch were submitted" in error


# -- list, show, stats -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(run: Cli, api: httpx.Client, key: str, target: TargetServer) -> list[str]:
    """The ids of three calls of this module's tenant that succeeded."""
    name = f"done-{uuid.uuid4().hex[:8]}"
    result = run("submit", "-f", "-", "--json",
                 input=json.dumps(calls(name, 3, f"{target.url}/ok")))
    ids = [item["id"] for item in json.loads(result.stdout)["items"]]
    headers = {"Authorization": f"Bearer {key}"}

    def succeeded() -> bool:
        page = api.get("/v1/service-calls", params={"name": name, "status": "succeeded"},
                       headers=headers).json()
        return len(page["items"]) == 3

    wait_until(succeeded, timeout=15)
    return ids


def test_list_show_and_stats_print_json_for_scripts(run: Cli, finished: list[str]) -> None:
    page = json.loads(run("list", "--status", "succeeded", "--limit", "2", "--json").stdout)
    assert len(page["items"]) == 2
    assert page["next_cursor"]
    every = run("list", "--status", "succeeded", "--limit", "2", "--all", "--json").stdout
    listed = [json.loads(line) for line in every.splitlines()]  # NDJSON: one call a line
    assert set(finished) <= {call["id"] for call in listed}

    shown = json.loads(run("show", finished[0], "--json").stdout)
    assert (shown["id"], shown["status"]) == (finished[0], "succeeded")
    assert [e["outcome"] for e in shown["executions"]] == ["succeeded"]
    assert shown["events"][0]["type"] == "ServiceCall.Submitted"

    report = json.loads(run("stats", "--since", "10m", "--json").stdout)
    assert report["bucket"] == "minute"
    assert sum(entry["succeeded"] for entry in report["items"]) >= 3


def test_piped_output_is_plain_text_with_readable_tables(
    duecall_server: DuecallProcess, key: str, finished: list[str]
) -> None:
    options = ("--url", duecall_server.url, "--api-key", key)
    listed = run_piped("list", "--status", "succeeded", *options)
    shown = run_piped("show", finished[0], *options)
    stats = run_piped("stats", "--since", "10m", *options)

    for result in (listed, shown, stats):
        assert result.returncode == 0, result.stderr
        assert ANSI not in result.stdout + result.stderr
    assert any(finished[0] in line and "succeeded" in line for line in listed.stdout.splitlines())
    assert "succeeded on attempt 1 (200" in shown.stdout
    [row] = [line for line in stats.stdout.splitlines() if line.lstrip("│ ").startswith("all")]
    assert any(bar in row for bar in "▂▃▄▅▆▇█")  # the sparkline


# -- errors -------------------------------------------------------------------------------------


def test_unreachable_server_is_one_sentence_and_debug_shows_the_traceback() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    plain = run_piped("list", "--url", url, "--api-key", "k")
    debug = run_piped("--debug", "list", "--url", url, "--api-key", "k")

    assert plain.returncode != 0
    assert plain.stdout == ""
    assert plain.stderr == f"error: cannot reach duecall at {url}: is it running?\n"
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.endswith(plain.stderr)


def test_api_refusals_are_one_sentence(duecall_server: DuecallProcess, run: Cli) -> None:
    refused = CliRunner().invoke(cli.app, ["list", "--url", duecall_server.url,
                                           "--api-key", "dc_nobody_x_y"])
    assert "the API key was refused" in one_sentence(refused)
    unknown = str(uuid.uuid4())
    assert one_sentence(run("show", unknown)) == f"error: not found: service call {unknown} " \
                                                 "not found"
    assert "created_from" in one_sentence(run("list", "--created-from", "yesterday"))
