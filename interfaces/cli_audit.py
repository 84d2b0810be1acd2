"""`duecall replay ID` (a call's history as a timeline, from the API) and `duecall audit ...`
(verify the event hash chains, export their heads; straight against the database)."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import psycopg
import typer
from rich.table import Column, Table
from rich.text import Text

from infrastructure.chain_verifier import anchors_from, call_family, chain_heads, verify
from infrastructure.database import resolve_database_url
from infrastructure.settings import Settings
from interfaces.cli_support import (
    DEFAULT_API,
    ApiOption,
    JsonOption,
    KeyOption,
    call_api,
    console,
    print_json,
)
from interfaces.timeline import timeline

app = typer.Typer(help="Tamper evidence: verify the event hash chains, export anchors.",
                  no_args_is_help=True)
TenantOnly = Annotated[str | None, typer.Option("--tenant", help="Only this tenant's events.")]


def replay(
    service_call_id: Annotated[str, typer.Argument(help="The call's id.")],
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replay a call's recorded history: submission, each attempt, each wait and why."""
    history = call_api("GET", api_url, f"/v1/service-calls/{service_call_id}/events", api_key)
    if as_json:
        print_json(history)
        return
    console.print(f"[bold]{service_call_id}[/]: {len(history['items'])} events")
    print_timeline(history["items"])


def print_timeline(events: list[dict[str, Any]], cut: int | None = None) -> None:
    """Recorded events as a timeline, one line each (see ``interfaces.timeline``); with
    ``cut``, what each says is cut to that many characters and never wraps."""
    what = Column("what happened", no_wrap=cut is not None, overflow="ellipsis")
    table = Table("time", "+s", "", what, box=None, pad_edge=False)
    for line in timeline(events):
        said = line.what if cut is None or len(line.what) <= cut else line.what[: cut - 1] + "…"
        table.add_row(line.at[11:23], f"{line.offset:.3f}", line.who, Text(said),
                      style=line.style or None)
    console.print(table)


@app.command("verify")
def verify_chains(
    service_call_id: Annotated[
        str | None, typer.Argument(help="Only this call (and its executions).")
    ] = None,
    tenant: TenantOnly = None,
    anchors: Annotated[
        Path | None, typer.Option(help="Also check against heads saved by `audit anchor`.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute every hash chain from the stored events; exit 1 naming the first event
    that does not match (edited, deleted, or inserted around the trigger)."""
    anchored = anchors_from(json.loads(anchors.read_text())) if anchors else None
    with _connect() as conn:
        ids = call_family(conn, _uuid(service_call_id)) if service_call_id else None
        result = verify(conn, tenant=tenant, originator_ids=ids, anchors=anchored)
    first = result.first
    if as_json:
        console.print_json(data={
            "ok": first is None, "aggregates": result.aggregates, "events": result.events,
            "breaks": [{**b.__dict__, "originator_id": str(b.originator_id)}
                       for b in result.breaks]})
    elif first is None:
        console.print(f"[green]ok[/]: {result.events} events in {result.aggregates} chains")
    else:
        console.print(f"[red]tampered[/]: {first.originator_id} version {first.version} "
                      f"(position {first.position}): {first.problem}")
        console.print(f"{len(result.breaks)} of {result.aggregates} chains broken")
    if first is not None:
        raise typer.Exit(1)


@app.command("anchor")
def anchor(
    tenant: TenantOnly = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
) -> None:
    """Export each aggregate's chain head (latest version and hash) and a digest of them all,
    as JSON, for an auditor to keep outside this database."""
    with _connect() as conn:
        heads: dict[str, Any] = chain_heads(conn, tenant)
    document = {"generated_at": datetime.now(UTC).isoformat(), **heads}
    text = json.dumps(document, indent=1)
    if output is None:
        print(text)
    else:
        output.write_text(text + "\n")
        console.print(f"{heads['aggregates']} chain heads written to {output}")


def _connect() -> psycopg.Connection[Any]:
    return psycopg.connect(resolve_database_url(Settings()), autocommit=True)


def _uuid(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a service call id") from None
