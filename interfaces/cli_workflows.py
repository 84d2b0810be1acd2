"""`duecall workflows ...`: workflow runs over the API (submit, show, list, latest, cancel,
pause, resume, retry, rerun); the guide is docs/workflows.md."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Column, Table
from rich.text import Text

from interfaces.cli_queries import when
from interfaces.cli_stats import parse_time
from interfaces.cli_support import (
    DEFAULT_API,
    ApiOption,
    JsonOption,
    KeyOption,
    call_api,
    console,
    print_json,
)
from interfaces.cli_workflow_definitions import parse_input as _input
from interfaces.cli_workflow_definitions import register, submit_body
from interfaces.cli_workflow_events import print_history, run_history

app = typer.Typer(
    help="Workflow runs: DAGs of steps, each a service call, data passed between them.\n\n"
    "Example:\n  duecall workflows submit charge.json --input '{\"key\": \"k-1\"}'\n\n"
    "Guide: docs/workflows.md",
    no_args_is_help=True,
)
PATH = "/v1/workflows/runs"
STATE_STYLE = {
    "succeeded": "green", "failed": "bold red", "cancelled": "red", "running": "cyan",
    "pending": "yellow", "skipped": "dim", "paused": "magenta", "compensating": "magenta",
}
IdArgument = Annotated[str, typer.Argument(help="The run's id.")]
register(app)  # validate, definitions put|list|show


@app.command()
def submit(
    file: Annotated[str | None, typer.Argument(
        help="The definition, a JSON object ('-': stdin).")] = None,
    definition: Annotated[str | None, typer.Option(
        help="Instead of FILE: a stored definition, NAME or NAME@VERSION.")] = None,
    run_input: Annotated[
        str | None, typer.Option("--input", help="The run's input, a JSON object.")
    ] = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a run of the workflow defined in FILE (or stored: --definition).

    Example:
      duecall workflows submit charge.json --input '{"key": "k-1"}'
      duecall workflows submit --definition charge-customer@2
    """
    body = submit_body(file, definition)
    if run_input is not None:
        body["input"] = _input(run_input)
    _show(call_api("POST", api_url, PATH, api_key, json=body), as_json)


@app.command()
def show(
    run_id: IdArgument,
    events: Annotated[bool, typer.Option(
        "--events", help="Also its events (a timeline) and each step's attempts; with "
        "--json, the answer of its /events.")] = False,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a run: its status and each step's state, response status, duration and reason.

    Example:
      duecall workflows show 61da8f2a-66dc-43a1-9196-6eae9882f1cb
      duecall workflows show 61da8f2a-66dc-43a1-9196-6eae9882f1cb --events
    """
    if events and as_json:
        print_json(run_history(api_url, api_key, run_id))
        return
    _show(call_api("GET", api_url, f"{PATH}/{run_id}", api_key), as_json)
    if events:
        print_history(run_history(api_url, api_key, run_id))


def _command(action: str) -> Callable[..., None]:
    """A command that sends ``action`` to one run and shows the run after it."""

    def command(
        run_id: IdArgument,
        api_url: ApiOption = DEFAULT_API,
        api_key: KeyOption = None,
        as_json: JsonOption = False,
    ) -> None:
        _show(call_api("POST", api_url, f"{PATH}/{run_id}/{action}", api_key), as_json)

    return command


app.command("cancel", help="Cancel a run; its running steps' calls are cancelled.")(
    _command("cancel")
)
app.command("pause", help="Pause a run: no new steps start until it is resumed.")(
    _command("pause")
)
app.command("resume", help="Resume a paused run.")(_command("resume"))
app.command("retry", help="Retry a failed run from its failed steps (earlier outputs kept).")(
    _command("retry")
)


@app.command("list")
def list_runs(
    status: Annotated[
        list[str] | None, typer.Option(help="A status (repeatable, or a comma list).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Only runs of this workflow.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Submitted at or after: 15m, 24h, 7d ago, or RFC 3339.")] = None,
    until: Annotated[str | None, typer.Option(
        help="Submitted before: 15m, 24h, 7d ago, or RFC 3339.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Runs per page.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Next page, from a previous list.")] = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List workflow runs, newest first (from the read model; it may lag a moment).

    Example:
      duecall workflows list --name nightly-report --status failed --since 24h
    """
    now = datetime.now(UTC)
    params = {
        "status": status or [], "name": name, "limit": limit, "cursor": cursor,
        "created_after": since and parse_time(since, now).isoformat(),
        "created_before": until and parse_time(until, now).isoformat(),
    }
    page = call_api("GET", api_url, PATH, api_key,
                    params={k: v for k, v in params.items() if v})
    if as_json:
        print_json(page)
        return
    table = Table(Column("id", no_wrap=True, min_width=36),  # never cut: people copy it
                  "name", "status", "steps", "duration", "created (UTC)", "finished (UTC)")
    for run in page["items"]:
        duration = run["duration_seconds"]
        table.add_row(run["id"], run["name"], _styled(run["status"]), _steps(run["counts"]),
                      "" if duration is None else f"{duration:.3f} s", when(run["created_at"]),
                      when(run["finished_at"]))
    console.print(table)
    meta = page["meta"]
    console.print(f"read model at position {meta['position']} of {meta['head']} "
                  f"(lag {meta['lag']})", style="dim")
    if page["next_cursor"]:
        console.print(f"more: --cursor {page['next_cursor']}", style="dim", soft_wrap=True)


@app.command()
def latest(
    name: Annotated[str, typer.Argument(help="The workflow's name (its definition's).")],
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the newest run of the workflow NAME, as `show` does.

    Example:
      duecall workflows latest nightly-report --json
    """
    newest = call_api("GET", api_url, f"{PATH}/latest", api_key, params={"name": name})
    _show(call_api("GET", api_url, f"{PATH}/{newest['id']}", api_key), as_json)


@app.command()
def rerun(
    run_id: IdArgument,
    step: Annotated[str, typer.Argument(help="The step to run again (its id).")],
    step_input: Annotated[str | None, typer.Option(
        "--input", help="Laid over the run's input for this step, a JSON object.")] = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run one step of a finished run again, alone, with edited input (recorded).

    Example:
      duecall workflows rerun $RUN charge --input '{"amount": 40}'
    """
    body = {"input": _input(step_input)} if step_input is not None else {}
    path = f"{PATH}/{quote(run_id, safe='')}/steps/{quote(step, safe='')}/rerun"
    _show(call_api("POST", api_url, path, api_key, json=body), as_json)


def _steps(counts: dict[str, int]) -> str:
    """``2/3 succeeded, 1 failed``: the counts that are not zero."""
    told = [f"{counts[k]} {k}" for k in ("failed", "skipped", "cancelled", "running") if counts[k]]
    return ", ".join([f"{counts['succeeded']}/{counts['total']} succeeded", *told])


def _show(run: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(run)
        return
    counts = run["counts"]
    console.print(
        Text.assemble(
            (run["name"], "bold"), f"  {run['id']}  ", _styled(run["status"]),
            f"  steps {counts['succeeded']}/{counts['total']} succeeded, "
            f"{counts['failed']} failed, {counts['skipped']} skipped",
        )
    )
    table = Table("step", "state", "gen", "status", "duration", "reason")
    for step_id, step in run["steps"].items():
        duration = step["duration_seconds"]
        table.add_row(
            step_id, _styled(step["state"]), str(step["generation"]),
            "" if step["status_code"] is None else str(step["status_code"]),
            "" if duration is None else f"{duration:.3f} s", step["reason"] or "",
        )
    console.print(table)


def _styled(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, ""))
