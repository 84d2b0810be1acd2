"""`duecall submit`: one call from options, or many from JSON (a file or stdin) through the
batch endpoint, in chunks of up to 1,000, with a progress bar on a terminal."""

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from interfaces.cli_batch import Item, check_items, read_items
from interfaces.cli_errors import ApiError, CliError, err_console
from interfaces.cli_support import (
    DEFAULT_API,
    ApiOption,
    JsonOption,
    KeyOption,
    call_api,
    console,
    print_json,
)

MAX_BATCH = 1000
BATCH_PATH = "/v1/service-calls:batch"


def submit(
    url: Annotated[str | None, typer.Argument(help="The URL duecall will call.")] = None,
    file: Annotated[
        str | None,
        typer.Option("--file", "-f", help="Submit many calls: a JSON array or NDJSON of API "
                     "bodies (each may carry its idempotency_key); '-' reads stdin."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=MAX_BATCH, help="Calls per request with --file.")
    ] = MAX_BATCH,
    method: Annotated[str, typer.Option("--method", "-X")] = "POST",
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="'Name: value' (repeatable).")
    ] = None,
    secret_header: Annotated[
        list[str] | None,
        typer.Option(
            "--secret-header",
            help="A header name whose value is secret: stored encrypted, shown redacted "
            "(repeatable; Authorization, Cookie, X-Api-Key... always are).",
        ),
    ] = None,
    data: Annotated[str | None, typer.Option("--data", "-d", help="Body, sent as is.")] = None,
    json_body: Annotated[
        str | None, typer.Option("--json-body", help="Body as JSON text, sent as JSON.")
    ] = None,
    delay: Annotated[float | None, typer.Option(help="Seconds from now.")] = None,
    at: Annotated[str | None, typer.Option(help="Due time, RFC 3339 with offset.")] = None,
    name: Annotated[str, typer.Option(help="A name for the call.")] = "default",
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    correlation_id: Annotated[str | None, typer.Option()] = None,
    timeout: Annotated[float, typer.Option(help="Request timeout, seconds.")] = 30.0,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts before failing.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Submit at most once per key (per tenant).")
    ] = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a service call: duecall will make this request when it is due.

    With --file/-f: many calls at once (the other options are for a single call), all checked
    before any is sent."""
    if file is not None:
        if url is not None:
            raise CliError("give a URL (one call) or --file (many calls), not both")
        submit_many(file, batch_size, api_url, api_key, as_json)
        return
    if url is None:
        raise CliError("give the URL to call, or --file FILE (or -f -) with calls as JSON")
    try:
        body: Any = json.loads(json_body) if json_body is not None else data
    except ValueError as error:
        raise CliError(f"--json-body is not valid JSON: {error}") from None
    payload = {
        "name": name,
        "request": {"method": method, "url": url, "headers": _headers(header),
                    "body": body, "timeout_seconds": timeout,
                    "secret_headers": secret_header or []},
        "due_at": at,
        "delay_seconds": delay,
        "tags": tag or [],
        "correlation_id": correlation_id,
        "retry_policy": {"max_attempts": max_attempts} if max_attempts else None,
    }
    extra = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    call = call_api("POST", api_url, "/v1/service-calls", api_key, json=payload, headers=extra)
    if as_json:
        print_json(call)
    else:
        console.print(f"submitted [bold]{call['id']}[/] due {call['due_at']} ({call['status']})")


def submit_many(
    file: str, batch_size: int, api_url: str, api_key: str | None, as_json: bool
) -> None:
    """Read, check every item, then send them in chunks; a refusal names the item."""
    origin = "stdin" if file == "-" else file
    items = read_items(_read(file), origin)
    check_items(items)
    started, results = time.monotonic(), list[dict[str, Any]]()
    chunks = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    progress = Progress(TextColumn("submitting"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err_console,
                        disable=not err_console.is_terminal)
    with progress:
        task = progress.add_task("submit", total=len(items))
        for chunk in chunks:
            results.extend(_send(chunk, len(results), api_url, api_key))
            progress.advance(task, len(chunk))
    created = sum(1 for r in results if r["created"])
    summary = {"submitted": len(results), "created": created, "existing": len(results) - created,
               "batches": len(chunks), "seconds": round(time.monotonic() - started, 3)}
    if as_json:
        print_json({**summary, "items": results})
        return
    console.print(
        f"submitted [bold]{len(results):,}[/] calls from {origin} in {len(chunks)} "
        f"batch{'es' if len(chunks) != 1 else ''} ({created:,} new, {len(results) - created:,} "
        f"already submitted under their idempotency_key) in {summary['seconds']:.1f} s"
    )
    console.print(f"first {results[0]['id']}, last {results[-1]['id']}", style="dim")


def _send(
    chunk: list[Item], done: int, api_url: str, api_key: str | None
) -> list[dict[str, Any]]:
    try:
        answer = call_api("POST", api_url, BATCH_PATH, api_key,
                          json={"calls": [item.body for item in chunk]})
    except ApiError as error:
        raise CliError(f"{_located(error, chunk)}; {_so_far(done)}") from error
    except CliError as error:
        raise CliError(f"{error}; {_so_far(done)}") from error
    items: list[dict[str, Any]] = answer["items"]
    return items


def _located(error: ApiError, chunk: list[Item]) -> str:
    """The API's refusal, naming the item of the input rather than its place in the chunk."""
    for field, message in error.fields:
        index, _, rest = field.removeprefix("calls.").partition(".")
        if field.startswith("calls.") and index.isdigit() and int(index) < len(chunk):
            return f"{chunk[int(index)].where}: {rest or 'the item'}: {message}"
    return str(error)


def _so_far(done: int) -> str:
    if not done:
        return "nothing was submitted"
    return (f"the {done:,} calls before this batch were submitted (give items an "
            "idempotency_key to resume safely)")


def _read(file: str) -> str:
    if file == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read {file}: {getattr(error, 'strerror', None) or error}") from None


def _headers(lines: list[str] | None) -> dict[str, str]:
    headers = {}
    for text in lines or []:
        name, sep, value = text.partition(":")
        if not sep:
            raise typer.BadParameter(f"header {text!r} is not 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers
