"""`duecall workflows ...`: workflow runs over the API (submit, show, cancel, pause, resume,
retry); the guide is docs/workflows.md."""

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from interfaces.cli_errors import CliError
from interfaces.cli_schedules import json_document
from interfaces.cli_support import (
    DEFAULT_API,
    ApiOption,
    JsonOption,
    KeyOption,
    call_api,
    console,
    print_json,
)

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


@app.command()
def submit(
    file: Annotated[str, typer.Argument(help="The definition, a JSON object ('-': stdin).")],
    run_input: Annotated[
        str | None, typer.Option("--input", help="The run's input, a JSON object.")
    ] = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a run of the workflow defined in FILE.

    Example:
      duecall workflows submit charge.json --input '{"key": "k-1"}'
    """
    body: dict[str, Any] = {"definition": json_document(file)}
    if run_input is not None:
        try:
            body["input"] = json.loads(run_input)
        except json.JSONDecodeError as error:
            raise CliError(f"--input is not valid JSON: {error.msg}") from None
    _show(call_api("POST", api_url, PATH, api_key, json=body), as_json)


@app.command()
def show(
    run_id: IdArgument,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a run: its status and each step's state, response status, duration and reason.

    Example:
      duecall workflows show 61da8f2a-66dc-43a1-9196-6eae9882f1cb
    """
    _show(call_api("GET", api_url, f"{PATH}/{run_id}", api_key), as_json)


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
