"""`duecall workers`: the workers that say they are alive, straight from the database."""

import typer
from rich.table import Table

from interfaces.cli_support import JsonOption, console, local_container, print_json


def workers(as_json: JsonOption = False) -> None:
    """The live workers: host, pid, attempts in flight, seconds since their last heartbeat
    (one silent for DUECALL_WORKER_DEAD_AFTER_SECONDS is dead: its leases end)."""
    container = local_container()
    try:
        live = container.worker_registry.live()
    finally:
        container.close()
    if as_json:
        print_json([vars(w) for w in live])
        return
    if not live:
        console.print("no live workers")
        raise typer.Exit(0)
    table = Table("id", "host", "pid", "started", "in flight", "silent (s)")
    for w in live:
        table.add_row(
            str(w.id), w.host, str(w.pid), w.started_at.isoformat(timespec="seconds"),
            str(w.in_flight), f"{w.silent_seconds:.1f}",
        )
    console.print(table)
