"""End to end: `duecall schedules ...` against a real server on a real PostgreSQL: create by
options and from a file, list, show, update, pause/resume, trigger, backfill --dry-run,
preview, fires, events, delete; refusals as one sentence naming the field.

Specs fire rarely (yearly or monthly), so nothing fires on its own while a test looks; the
module's schedules belong to a tenant of its own."""

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from harness.duecall_process import DuecallProcess
from harness.processes import REPO_ROOT, duecall_command
from harness.target_server import TargetServer
from interfaces import cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
YEARLY = "0 0 1 1 *"
Cli = Callable[..., Result]


@pytest.fixture(scope="module")
def key(duecall_server: DuecallProcess) -> str:
    """An API key of a tenant of its own (so lists are this module's)."""
    return duecall_server.tenant_key(f"clis-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def run(duecall_server: DuecallProcess, key: str) -> Cli:
    """`duecall schedules <args> --url <server> --api-key <key>`, in process; ``input``: stdin."""

    def invoke(*args: str, input: str | None = None) -> Result:
        options = ["--url", duecall_server.url, "--api-key", key]
        return CliRunner().invoke(cli.app, ["schedules", *args, *options], input=input)

    return invoke


@pytest.fixture(scope="module")
def piped(duecall_server: DuecallProcess, key: str) -> Callable[..., str]:
    """The stdout of `duecall schedules <args>` run as a process whose output is a pipe (tables
    as wide as their content, no colour)."""

    def invoke(*args: str) -> str:
        options = ["--url", duecall_server.url, "--api-key", key]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(REPO_ROOT)}  # no COLUMNS, no FORCE_COLOR
        done = subprocess.run(
            duecall_command("schedules", *args, *options),
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "\x1b[" not in done.stdout
        return done.stdout

    return invoke


def answer(result: Result) -> Any:
    """The JSON a `--json` command printed (it succeeded)."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def one_sentence(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    return line


@pytest.fixture
def create(run: Cli, target: TargetServer) -> Callable[..., dict[str, Any]]:
    """A schedule made with `schedules create URL --name ... --cron ...` and more options."""

    def make(*options: str, cron: str = YEARLY) -> dict[str, Any]:
        name = f"report-{uuid.uuid4().hex[:6]}"
        url = f"{target.url}/ok"
        schedule: dict[str, Any] = answer(
            run("create", url, "--name", name, "--cron", cron, *options, "--json")
        )
        return schedule

    return make


def test_create_by_options_sets_the_spec_and_the_call(run: Cli, target: TargetServer) -> None:
    result = run(
        "create",
        f"{target.url}/report",
        "--name",
        "nightly-report",
        "--cron",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--overlap",
        "skip",
        "--on-missed",
        "all",
        "--max-catchup",
        "5",
        "--jitter",
        "2.5",
        "-X",
        "PUT",
        "-H",
        "X-Report: nightly",
        "--json-body",
        '{"report": "nightly"}',
        "--max-attempts",
        "3",
        "--tag",
        "reports",
        "--json",
    )

    schedule = answer(result)
    spec, call = schedule["spec"], schedule["call"]
    assert (schedule["name"], schedule["status"]) == ("nightly-report", "active")
    assert (spec["cron"], spec["timezone"], spec["overlap"]) == (
        "30 2 * * *",
        "America/New_York",
        "skip",
    )
    assert (spec["on_missed"], spec["max_catchup"], spec["jitter_seconds"]) == ("all", 5, 2.5)
    assert (spec["gap"], spec["fold"]) == ("shift", "first")  # the defaults
    assert call["request"]["method"] == "PUT"
    assert call["request"]["headers"]["X-Report"] == "nightly"
    assert json.loads(call["request"]["body"]) == {"report": "nightly"}
    assert (call["retry_policy"]["max_attempts"], call["tags"]) == (3, ["reports"])
    assert schedule["next_fire_at"]


def test_create_from_a_file_or_stdin_with_options_over_it(
    run: Cli, target: TargetServer, tmp_path: Path
) -> None:
    body = {
        "name": "from-file",
        "spec": {"interval_seconds": 3600, "starting": "00:05", "timezone": "Europe/London"},
        "call": {"request": {"url": f"{target.url}/ok"}, "tags": ["filed"]},
    }
    file = tmp_path / "schedule.json"
    file.write_text(json.dumps(body))

    from_file = answer(run("create", "-f", str(file), "--json"))
    renamed = answer(
        run("create", "-f", "-", "--name", "other", "--tz", "UTC", "--json", input=json.dumps(body))
    )

    assert (from_file["name"], from_file["spec"]["interval_seconds"]) == ("from-file", 3600)
    assert from_file["spec"]["starting"] == "00:05"
    assert from_file["call"]["tags"] == ["filed"]
    assert (renamed["name"], renamed["spec"]["timezone"]) == ("other", "UTC")
    assert renamed["spec"]["starting"] == "00:05"  # the file's, under the options given
    assert "URL" in one_sentence(run("create", "-f", str(file), f"{target.url}/ok"))


def test_show_and_list_print_tables_and_json(
    run: Cli, piped: Callable[..., str], create: Callable[..., dict[str, Any]]
) -> None:
    schedule = create("--tz", "Europe/London")
    sid = schedule["id"]

    shown = run("show", sid)
    assert shown.exit_code == 0, shown.output
    assert f"{sid}  {schedule['name']}  active" in shown.stdout
    assert f"cron {YEARLY}  in Europe/London" in shown.stdout
    assert answer(run("show", sid, "--json")) == schedule

    def listed() -> bool:
        page = answer(run("list", "--name", schedule["name"], "--json"))
        return [item["id"] for item in page["items"]] == [sid]

    assert wait_until(listed, timeout=10)  # the read model follows the events
    table = piped("list", "--status", "active", "--limit", "100")
    [row] = [line for line in table.splitlines() if sid in line]
    assert "active" in row
    assert "Europe/London" in row


def test_pause_and_resume_change_the_status(
    run: Cli, create: Callable[..., dict[str, Any]]
) -> None:
    sid = create()["id"]

    paused = answer(run("pause", sid, "--json"))
    again = run("pause", sid)
    resumed = answer(run("resume", sid, "--json"))

    assert (paused["status"], paused["pause_reason"]) == ("paused", "client")
    assert again.exit_code == 0, again.output
    assert "paused (client)" in again.stdout
    assert (resumed["status"], resumed["pause_reason"]) == ("active", None)


def test_update_changes_only_the_spec_fields_given(
    run: Cli, create: Callable[..., dict[str, Any]]
) -> None:
    schedule = create("--tz", "Asia/Tokyo", "--overlap", "buffer_one")

    updated = answer(
        run("update", schedule["id"], "--cron", "0 3 * * *", "--name", "renamed", "--json")
    )

    assert updated["name"] == "renamed"
    assert updated["spec"]["cron"] == "0 3 * * *"
    assert (updated["spec"]["timezone"], updated["spec"]["overlap"]) == (
        "Asia/Tokyo",
        "buffer_one",
    )  # kept, though the API replaces a spec whole
    assert "nothing to change" in one_sentence(run("update", schedule["id"]))


def test_trigger_fires_a_call_now_and_fires_lists_it(
    run: Cli, piped: Callable[..., str], create: Callable[..., dict[str, Any]]
) -> None:
    sid = create()["id"]

    triggered = answer(run("trigger", sid, "--json"))

    call = triggered["call"]
    assert call["idempotency_key"] == f"sched:{sid}:trigger:{call['id']}"
    assert triggered["schedule"]["counts"]["triggered"] == 1

    def succeeded() -> bool:
        page = answer(run("fires", sid, "--json"))
        return [(f["call_id"], f["call_status"]) for f in page["items"]] == [
            (call["id"], "succeeded")
        ]

    assert wait_until(succeeded, timeout=15)
    table = piped("fires", sid)
    [row] = [line for line in table.splitlines() if call["id"] in line]
    assert "trigger" in row
    assert "succeeded" in row


def test_backfill_dry_run_lists_the_times_and_fires_nothing(
    run: Cli, piped: Callable[..., str], create: Callable[..., dict[str, Any]]
) -> None:
    sid = create(cron="0 0 1 * *")["id"]  # monthly, at midnight UTC on the 1st
    window = ("--from", "2026-01-01T00:00:00Z", "--to", "2026-03-31T00:00:00Z", "--dry-run")

    result = answer(run("backfill", sid, *window, "--json"))
    table = piped("backfill", sid, *window)

    assert result["dry_run"] is True
    assert [item["nominal"] for item in result["items"]] == [
        "2026-01-01T00:00:00Z",
        "2026-02-01T00:00:00Z",
        "2026-03-01T00:00:00Z",
    ]
    assert {item["action"] for item in result["items"]} == {"fire"}
    assert result["calls"] == []
    assert "would fire 3 of 3 nominal times" in table
    assert answer(run("fires", sid, "--json"))["items"] == []


def test_preview_of_a_schedule_and_of_a_spec_shows_dst(
    run: Cli, piped: Callable[..., str], create: Callable[..., dict[str, Any]]
) -> None:
    sid = create()["id"]
    spring = (
        "--cron",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--after",
        "2030-03-09T00:00:00Z",
        "--count",
        "3",
    )

    own = answer(run("preview", sid, "--count", "3", "--json"))
    shifted = answer(run("preview", *spring, "--json"))
    skipped = answer(run("preview", *spring, "--gap", "skip", "--json"))
    table = piped("preview", *spring)

    assert len(own["items"]) == 3
    assert own["timezone"] == "UTC"
    day = shifted["items"][1]  # 02:30 on 2030-03-10 does not exist in New York
    assert (day["nominal"], day["dst_note"], day["fires"]) == (
        "2030-03-10T07:30:00Z",
        "gap_shifted",
        True,
    )
    assert (skipped["items"][1]["dst_note"], skipped["items"][1]["fires"]) == ("gap_skipped", False)
    assert "gap_shifted" in table
    assert "both" in one_sentence(run("preview", sid, "--cron", YEARLY))


def test_events_and_delete(
    run: Cli, piped: Callable[..., str], create: Callable[..., dict[str, Any]]
) -> None:
    sid = create()["id"]
    run("pause", sid)

    run("resume", sid)
    history = answer(run("events", sid, "--json"))
    oldest = answer(run("events", sid, "--oldest-first", "--limit", "2", "--json"))
    table = piped("events", sid)
    deleted = answer(run("delete", sid, "--json"))

    newest_first = ["Schedule.Resumed", "Schedule.Paused", "Schedule.Created"]
    assert [e["type"] for e in history["items"]] == newest_first
    assert [e["type"] for e in oldest["items"]] == newest_first[::-1][:2]
    assert oldest["next_cursor"] == 2
    assert "more: --cursor" not in table
    assert "reason=client" in table
    assert deleted["status"] == "deleted"
    assert "was deleted" in one_sentence(run("show", sid))


# -- errors -------------------------------------------------------------------------------------


def test_an_invalid_cron_is_one_sentence_naming_the_field(run: Cli, target: TargetServer) -> None:
    url = f"{target.url}/ok"

    bad_minute = one_sentence(run("create", url, "--name", "bad", "--cron", "61 * * * *"))
    four_fields = one_sentence(run("preview", "--cron", "0 0 1 1"))
    bad_zone = one_sentence(
        run("create", url, "--name", "bad", "--every", "60", "--tz", "Mars/Olympus")
    )

    assert bad_minute == "error: invalid request: spec.cron: bad minute field"
    assert four_fields.startswith("error: invalid request: spec.cron: needs 5 to 7 fields")
    assert bad_zone.startswith("error: invalid request: spec.timezone: unknown time zone")


def test_an_unknown_schedule_is_not_found(run: Cli) -> None:
    unknown = str(uuid.uuid4())

    for command in ("show", "pause", "trigger", "fires", "events"):
        error = one_sentence(run(command, unknown))
        assert error == f"error: not found: schedule {unknown} not found", command
