"""`duecall projections ...`: the read models' status, rebuilds, and a process to run them."""

import signal
import threading
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from interfaces.cli_support import local_container

app = typer.Typer(help="Read models: status, rebuild, run.", no_args_is_help=True)
console = Console()


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")] = False,
) -> None:
    """Each projection's position, the head of the log, and the lag in events and seconds."""
    container = local_container()
    try:
        rows = container.read_models.status()
    finally:
        container.close()
    if as_json:
        console.print_json(data=[row.__dict__ for row in rows])
        return
    table = Table("projection", "position", "head", "lag (events)", "lag (s)")
    for row in rows:
        table.add_row(row.name, str(row.position), str(row.head), str(row.lag_events),
                      f"{row.lag_seconds:.1f}")
    console.print(table)


@app.command()
def rebuild(name: Annotated[str, typer.Argument(help="The read model to rebuild.")]) -> None:
    """Empty a read model and rebuild it from the first event; the service keeps running
    (its live runners pause while this holds the projection's lock)."""
    container = local_container()
    try:
        if name not in container.read_models.runners:
            choices = ", ".join(container.read_models.runners)
            raise typer.BadParameter(f"unknown read model {name!r} (one of: {choices})")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            total = container.read_models.event_count()
            task = progress.add_task(f"rebuilding {name}", total=total)
            container.read_models.rebuild(name, lambda n: progress.advance(task, n))
    finally:
        container.close()
    console.print(f"[bold]{name}[/] rebuilt")


@app.command()
def run() -> None:
    """Run the projection runners in this process (as many processes as you like)."""
    container = local_container()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    container.start_projections()
    stop.wait()
    container.close()
