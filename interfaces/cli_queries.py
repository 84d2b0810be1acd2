"""`duecall list`: the calls of a tenant from the read model, filtered, newest first."""

from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

console = Console()


def list_calls(
    status: Annotated[list[str] | None, typer.Option(help="A status (repeatable).")] = None,
    name: Annotated[str | None, typer.Option(help="Only calls of this name.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only calls with this tag.")] = None,
    host: Annotated[str | None, typer.Option(help="Only calls to this host.")] = None,
    sort: Annotated[str, typer.Option(help="-created (newest first) or due.")] = "-created",
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    cursor: Annotated[str | None, typer.Option(help="Next page, from a previous list.")] = None,
    api_url: Annotated[str, typer.Option("--api", envvar="DUECALL_API_URL")] = (
        "http://127.0.0.1:8000"
    ),
    tenant: Annotated[str | None, typer.Option("--tenant", envvar="DUECALL_TENANT")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print raw JSON.")] = False,
) -> None:
    """List service calls (from the read model; see `meta` for how fresh it is)."""
    params = {"status": status or [], "name": name, "tag": tag, "host": host, "sort": sort,
              "limit": limit, "cursor": cursor}
    page = _get(api_url, "/v1/service-calls", tenant, {k: v for k, v in params.items() if v})
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


def _get(base: str, path: str, tenant: str | None, params: dict[str, Any]) -> dict[str, Any]:
    headers = {"X-Tenant-Id": tenant} if tenant else {}
    try:
        response = httpx.get(base.rstrip("/") + path, params=params, headers=headers)
    except httpx.HTTPError as error:
        console.print(f"[red]cannot reach the duecall API at {base}[/]: {error}")
        raise typer.Exit(1) from None
    body: dict[str, Any] = response.json() if response.content else {}
    if response.status_code >= 400:
        console.print(f"[red]{body.get('title', 'error')}[/]: {body.get('detail', '')}")
        raise typer.Exit(1)
    return body
