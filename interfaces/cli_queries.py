"""`duecall list`: the calls of a tenant from the read model, filtered, newest first."""

from typing import Annotated

import typer
from rich.table import Table

from interfaces.cli_support import (
    DEFAULT_API,
    ApiOption,
    JsonOption,
    KeyOption,
    call_api,
    console,
)


def list_calls(
    status: Annotated[list[str] | None, typer.Option(help="A status (repeatable).")] = None,
    name: Annotated[str | None, typer.Option(help="Only calls of this name.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only calls with this tag.")] = None,
    host: Annotated[str | None, typer.Option(help="Only calls to this host.")] = None,
    sort: Annotated[str, typer.Option(help="-created (newest first) or due.")] = "-created",
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    cursor: Annotated[str | None, typer.Option(help="Next page, from a previous list.")] = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List service calls (from the read model; see `meta` for how fresh it is)."""
    params = {"status": status or [], "name": name, "tag": tag, "host": host, "sort": sort,
              "limit": limit, "cursor": cursor}
    query = {k: v for k, v in params.items() if v}
    page = call_api("GET", api_url, "/v1/service-calls", api_key, params=query)
    if as_json:
        console.print_json(data=page)
        return
    table = Table("id", "name", "status", "attempt", "host", "due", "created", "last")
    for c in page["items"]:
        last = c["last_error_kind"] or (str(c["last_status_code"] or ""))
        table.add_row(c["id"], c["name"], c["status"], str(c["attempt"]), c["host"],
                      c["due_at"], c["created_at"], last)
    console.print(table)
    meta = page["meta"]
    console.print(f"position {meta['position']} of {meta['head']} (lag {meta['lag']})")
    if page["next_cursor"]:
        console.print(f"more: --cursor {page['next_cursor']}")
