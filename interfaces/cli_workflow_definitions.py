"""`duecall workflows validate FILE` and `duecall workflows definitions put|list|show`:
stored, versioned workflow definitions over the API (``register`` adds them to
`duecall workflows`); ``submit_body`` is what `duecall workflows submit` sends, a file's
definition or ``--definition NAME[@VERSION]``."""

import json
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table
from rich.text import Text

from interfaces.cli_errors import ApiError, CliError
from interfaces.cli_queries import when
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

PATH = "/v1/workflows/definitions"
FileArgument = Annotated[str, typer.Argument(help="The definition, a JSON object ('-': stdin).")]
NameArgument = Annotated[str, typer.Argument(help="The definition's name.")]

definitions = typer.Typer(
    help="Stored workflow definitions: by name, each change a new version (1, 2, 3, ...).\n\n"
    "Example:\n  duecall workflows definitions put charge-customer charge.json\n"
    "  duecall workflows submit --definition charge-customer@2",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """`validate` and the `definitions` group, on `duecall workflows`."""
    app.command("validate")(validate)
    app.add_typer(definitions, name="definitions")


def submit_body(file: str | None, definition: str | None) -> dict[str, Any]:
    """The run's definition as a submit sends it: the file's, or a stored one's reference."""
    if (file is None) == (definition is None):
        raise CliError("give either a definition FILE or --definition NAME[@VERSION]")
    if file is not None:
        return {"definition": json_document(file)}
    assert definition is not None
    name, at, version = definition.partition("@")
    if not at:
        return {"definition_name": name}
    if not version.isdigit():
        raise CliError(f"--definition {definition!r}: the version after '@' must be a number")
    return {"definition_name": name, "definition_version": int(version)}


def parse_input(text: str) -> Any:
    """``--input``'s JSON (the API says if it is not an object)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(f"--input is not valid JSON: {error.msg}") from None


def validate(
    file: FileArgument,
    run_input: Annotated[str | None, typer.Option(
        "--input", help="A run's input (JSON object): the first steps are rendered with it.")
    ] = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the definition in FILE (a dry run: nothing stored, nothing run).

    Shows its order by level (the steps of a level may run in parallel), or every problem,
    each naming the step and field (exit code 1).

    Example:
      duecall workflows validate charge.json --input '{"key": "k-1"}'
    """
    body: dict[str, Any] = {"definition": json_document(file)}
    if run_input is not None:
        body["input"] = parse_input(run_input)
    try:
        result = call_api("POST", api_url, "/v1/workflows/validate", api_key, json=body)
    except ApiError as error:
        if error.status != 422 or not error.fields:
            raise
        for field, message in error.fields:
            console.print(Text.assemble(("✗ ", "red"), f"{field}: {message}"))
        raise CliError(f"{len(error.fields)} problem(s) in {file}") from None
    if as_json:
        print_json(result)
        return
    console.print(Text.assemble(("✓ ", "green"), f"{result['name']}: "
                                f"{result['step_count']} steps, {len(result['levels'])} levels"))
    for level, steps in enumerate(result["levels"]):
        console.print(Text(f"  {level}: {', '.join(steps)}"))


@definitions.command()
def put(
    name: NameArgument,
    file: FileArgument,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store the definition in FILE as NAME's next version (the same as the newest: nothing
    stored, that version shown).

    Example:
      duecall workflows definitions put charge-customer charge.json
    """
    stored = call_api("PUT", api_url, f"{PATH}/{quote(name, safe='')}", api_key,
                      json=json_document(file))
    if as_json:
        print_json(stored)
        return
    console.print(Text(f"{stored['name']} version {stored['version']} ({stored['steps']} "
                       f"steps, stored {when(stored['created_at'])} UTC)"))


@definitions.command("list")
def list_definitions(
    limit: Annotated[int, typer.Option(min=1, max=100, help="Definitions per page.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Next page, from a previous list.")] = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the stored definitions with their newest version, the newest registered first.

    Example:
      duecall workflows definitions list
    """
    params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
    page = call_api("GET", api_url, PATH, api_key, params=params)
    if as_json:
        print_json(page)
        return
    table = Table("name", "version", "steps", "created (UTC)", "updated (UTC)")
    for item in page["items"]:
        table.add_row(item["name"], str(item["version"]), str(item["steps"]),
                      when(item["created_at"]), when(item["updated_at"]))
    console.print(table)
    if page["next_cursor"]:
        console.print(f"more: --cursor {page['next_cursor']}", style="dim", soft_wrap=True)


@definitions.command()
def show(
    name: NameArgument,
    version: Annotated[int | None, typer.Option(
        min=1, help="This version (default: the newest).")] = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a stored definition (the newest version, or --version N).

    Example:
      duecall workflows definitions show charge-customer --version 2 --json
    """
    path = f"{PATH}/{quote(name, safe='')}"
    if version is not None:
        path += f"/versions/{version}"
    stored = call_api("GET", api_url, path, api_key)
    if as_json:
        print_json(stored)
        return
    console.print(Text(f"{stored['name']} version {stored['version']}, {stored['steps']} "
                       f"steps, stored {when(stored['created_at'])} UTC"))
    table = Table("step", "needs", "request")
    for step in stored["definition"].get("steps", []):
        request = step.get("request", {})
        table.add_row(step["id"], ", ".join(step.get("needs", [])),
                      Text(f"{request.get('method', '')} {request.get('url', '')}"))
    console.print(table)
