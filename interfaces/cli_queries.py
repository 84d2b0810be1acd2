"""`duecall list` (the tenant's calls from the read model, filtered, paged) and `duecall show`
(one call, its attempts and its timeline)."""

from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.table import Column, Table
from rich.text import Text

from interfaces.cli_audit import print_timeline
from interfaces.cli_support import (
    DEFAULT_API,
    ApiOption,
    JsonOption,
    KeyOption,
    call_api,
    console,
    print_json,
    print_ndjson,
)

STATUS_STYLE = {
    "succeeded": "green", "failed": "bold red", "cancelled": "red", "running": "cyan",
    "scheduled": "yellow", "paused": "magenta",
}
Time = Annotated[str | None, typer.Option(help="RFC 3339, e.g. 2025-01-31T12:00:00Z.")]


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def when(stamp: str | None) -> str:
    """An API timestamp, shorter: 2025-01-31T12:00:03.123456Z → 2025-01-31 12:00:03."""
    return stamp[:19].replace("T", " ") if stamp else ""


def list_calls(
    status: Annotated[list[str] | None, typer.Option(help="A status (repeatable).")] = None,
    name: Annotated[str | None, typer.Option(help="Only calls of this name.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only calls with this tag.")] = None,
    host: Annotated[str | None, typer.Option(help="Only calls to this host.")] = None,
    correlation_id: Annotated[str | None, typer.Option(help="Only this correlation id.")] = None,
    created_from: Time = None,
    created_to: Time = None,
    finished_from: Time = None,
    finished_to: Time = None,
    as_of: Annotated[
        str | None, typer.Option(help="The calls as they were at this time (RFC 3339).")
    ] = None,
    sort: Annotated[str, typer.Option(help="-created (newest first) or due.")] = "-created",
    limit: Annotated[int, typer.Option(min=1, max=100, help="Calls per page.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Next page, from a previous list.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every page, not just one.")] = False,
    total: Annotated[bool, typer.Option("--total", help="Also count every match.")] = False,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List service calls (from the read model; see `meta` for how fresh it is).

    With --json: the page as the API answers it; with --all --json: NDJSON, one call a line."""
    params = {"status": status or [], "name": name, "tag": tag, "host": host,
              "correlation_id": correlation_id, "created_from": created_from,
              "created_to": created_to, "finished_from": finished_from,
              "finished_to": finished_to, "as_of": as_of, "sort": sort, "limit": limit,
              "cursor": cursor, "include_total": total or None}
    query = {k: v for k, v in params.items() if v}
    if as_json and every:
        for page in _pages(api_url, api_key, query, every):
            for item in page["items"]:
                print_ndjson(item)
        return
    pages = list(_pages(api_url, api_key, query, every))
    if as_json:
        print_json(pages[0])
        return
    table = Table(Column("id", no_wrap=True, min_width=36),  # never cut: people copy it
                  "name", "status", "attempt", "host", "due (UTC)", "created (UTC)", "last")
    for page in pages:
        for c in page["items"]:
            last = c["last_error_kind"] or (str(c["last_status_code"] or ""))
            table.add_row(c["id"], c["name"], status_text(c["status"]), str(c["attempt"]),
                          c["host"], when(c["due_at"]), when(c["created_at"]), last)
    console.print(table)
    last, meta = pages[-1], pages[-1]["meta"]
    counted = f"{last['total']} matching; " if last.get("total") is not None else ""
    console.print(f"{counted}read model at position {meta['position']} of {meta['head']} "
                  f"(lag {meta['lag']})", style="dim")
    if last["next_cursor"] and not every:
        console.print(f"more: --cursor {last['next_cursor']}  (or --all)", style="dim",
                      soft_wrap=True)


def _pages(
    api_url: str, api_key: str | None, query: dict[str, Any], every: bool
) -> Iterator[dict[str, Any]]:
    """The first page; with ``every``, each next one too."""
    while True:
        page = call_api("GET", api_url, "/v1/service-calls", api_key, params=query)
        yield page
        if not every or not page["next_cursor"]:
            return
        query = {**query, "cursor": page["next_cursor"]}


def show(
    service_call_id: Annotated[str, typer.Argument(help="The call's id.")],
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a call's current state, its attempts and its timeline.

    With --json: the call, with its `executions` and its recorded `events`."""
    path = f"/v1/service-calls/{service_call_id}"
    call = call_api("GET", api_url, path, api_key)
    executions = call_api("GET", api_url, f"{path}/executions", api_key)["items"]
    events = call_api("GET", api_url, f"{path}/events", api_key)["items"]
    if as_json:
        print_json({**call, "executions": executions, "events": events})
        return
    request = call["request"]
    console.print(Text.assemble((call["id"], "bold"), f"  {call['name']}  ",
                                status_text(call["status"]), f"  attempt {call['attempt']}"))
    console.print(f"{request['method']} {request['url']}", markup=False, soft_wrap=True)
    facts = {"due": when(call["due_at"]), "created": when(call["created_at"]),
             "finished": when(call["finished_at"]), "tags": ", ".join(call["tags"]),
             "correlation id": call["correlation_id"] or ""}
    console.print("  ".join(f"{k}: {v}" for k, v in facts.items() if v), markup=False)
    table = Table("attempt", "outcome", "status", "error", "duration ms", "started (UTC)",
                  "message")
    for e in executions:
        table.add_row(str(e["attempt"]), status_text(e["outcome"]), str(e["status_code"] or ""),
                      e["error_kind"] or "", f"{e['duration_ms'] or 0:.1f}",
                      when(e["started_at"]), Text(e["message"] or ""))
    console.print(table)
    print_timeline(events)
