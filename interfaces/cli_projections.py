"""`duecall projections ...`: the read models' status, rebuilds, and a process to run them."""

import signal
import threading
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infrastructure import gc_tuning
from infrastructure.logging import configure_logging
from infrastructure.settings import Settings
from interfaces.cli_errors import CliError
from interfaces.cli_support import local_container
from interfaces.worker_process import build_when_reachable
from projections.runner import FoldError

app = typer.Typer(help="Read models: status, rebuild, run.", no_args_is_help=True)
console = Console()


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")] = False,
) -> None:
    """Each projection's position, the head of the log, the lag in events and seconds, and
    the events it could not fold (how many, the latest error)."""
    container = local_container()
    try:
        rows = container.read_models.status()
    finally:
        container.close()
    if as_json:
        console.print_json(data=[asdict(row) for row in rows])
        return
    table = Table("projection", "position", "head", "lag (events)", "lag (s)", "failures",
                  "last error")
    for row in rows:
        last = f"at {row.last_failed_position}: {row.last_error}" if row.failures else ""
        table.add_row(row.name, str(row.position), str(row.head), str(row.lag_events),
                      f"{row.lag_seconds:.1f}", str(row.failures), last)
    console.print(table)


@app.command()
def failures(
    name: Annotated[str | None, typer.Argument(help="Only this read model.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")] = False,
) -> None:
    """The events the read models could not fold, newest first (a rebuild clears them)."""
    container = local_container()
    try:
        found = container.read_models.failures(name)
    finally:
        container.close()
    if as_json:
        console.print_json(data=[asdict(f) for f in found], default=str)
        return
    table = Table("projection", "position", "topic", "originator", "tenant", "failed at", "error")
    for f in found:
        table.add_row(f.projection, str(f.position), f.topic, str(f.originator_id),
                      f.tenant_id or "", f"{f.failed_at:%Y-%m-%d %H:%M:%S}" if f.failed_at else "",
                      f.error)
    console.print(table)


@app.command()
def rebuild(name: Annotated[str, typer.Argument(help="The read model to rebuild.")]) -> None:
    """Empty a read model and rebuild it from the first event; the service keeps running
    (its live runners pause while this holds the projection's lock). An event it still cannot
    fold is recorded as a failure again and passed over (see `failures`)."""
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
        failed = next(s.failures for s in container.read_models.status() if s.name == name)
    except FoldError as error:
        raise CliError(f"rebuild of {name} stopped: {error}") from error
    finally:
        container.close()
    if failed:
        console.print(f"[bold]{name}[/] rebuilt; {failed} event(s) could not be folded "
                      f"(`duecall projections failures {name}`)")
    else:
        console.print(f"[bold]{name}[/] rebuilt")


@app.command()
def run() -> None:
    """Run the projection runners in this process (as many processes as you like). Started
    while the database is away, it waits for it (as a worker does)."""
    settings = Settings()
    configure_logging(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    container = build_when_reachable(settings, stop)
    if container is None:
        return
    container.start_projections()
    gc_tuning.tune()  # a fold allocates as much per event as a worker per call
    stop.wait()
    container.close()
