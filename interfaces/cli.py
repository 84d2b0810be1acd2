"""The `duecall` command line: run the service, submit calls, look at them."""

import signal
import threading
from typing import Annotated, Any

import prometheus_client
import typer

from infrastructure import gc_tuning
from infrastructure.container import Container
from infrastructure.logging import configure_logging
from infrastructure.settings import Settings
from interfaces import (
    cli_audit,
    cli_projections,
    cli_queries,
    cli_schedules,
    cli_stats,
    cli_submit,
    cli_tenants,
    cli_watch,
    cli_workers,
    cli_workflows,
    worker_process,
)
from interfaces.api import serving
from interfaces.api.app import create_app
from interfaces.cli_errors import DuecallGroup
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
    cls=DuecallGroup,
    help="duecall: durable scheduled HTTP calls, event-sourced in PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(cli_projections.app, name="projections")
app.command("submit")(cli_submit.submit)
app.command("list")(cli_queries.list_calls)
app.command("show")(cli_queries.show)
app.command("stats")(cli_stats.stats)
app.command("replay")(cli_audit.replay)
app.command("watch")(cli_watch.watch)
app.add_typer(cli_audit.app, name="audit")
app.add_typer(cli_tenants.app, name="tenants")
app.add_typer(cli_schedules.app, name="schedules")
app.command("workers")(cli_workers.workers)
app.add_typer(cli_workflows.app, name="workflows")


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="On an error, show its traceback too.")
    ] = False,
) -> None:
    # Errors are one sentence on stderr (exit 1); DuecallGroup reads --debug from here.
    pass


def _run_api(
    host: str | None, port: int | None, with_workers: bool, dev_key: bool = False
) -> None:
    settings = Settings()
    configure_logging(settings)
    host, port = host or settings.host, port or settings.port
    label = "API + workers" if with_workers else "API"
    console.print(f"duecall {label} on http://{host}:{port}  (OpenAPI docs: /docs)", style="bold")
    if dev_key:
        _show_dev_key(settings, f"http://{host}:{port}")
    serving.run(
        create_app(settings, with_workers=with_workers),
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        # duecall reads neither the client's address nor the scheme: no X-Forwarded-* parsing
        # on every request (uvloop and httptools, from uvicorn[standard], are uvicorn's "auto")
        proxy_headers=False,
    )


def _show_dev_key(settings: Settings, base_url: str) -> None:
    key_file = settings.data_dir.parent / "dev-key"
    container = Container.build(settings)
    try:
        key = cli_tenants.ensure_dev_key(container.tenants, key_file)
    finally:
        container.close()
    if key is None:
        console.print(f"{key_file} is gone; issue a key: duecall tenants issue-key dev")
        return
    console.print(f"development API key (tenant 'dev', kept in {key_file}):")
    console.print(f"  {key}", style="bold green", soft_wrap=True)
    console.print(
        f'  curl -H "Authorization: Bearer {key}" {base_url}/v1/service-calls', soft_wrap=True
    )
    console.print(f"dashboard: {base_url}/ui#key={key}", soft_wrap=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    dev_key: Annotated[
        bool,
        typer.Option(
            "--dev-key", help="Create a 'dev' tenant on first start and print its API key."
        ),
    ] = False,
) -> None:
    """Run the API and the workers in one process (embedded Postgres unless DATABASE_URL)."""
    _run_api(host, port, with_workers=True, dev_key=dev_key)


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
) -> None:
    """Run the HTTP API only (run `duecall worker` processes beside it)."""
    _run_api(host, port, with_workers=False)


@app.command()
def worker(
    projections: Annotated[
        bool,
        typer.Option(
            "--projections/--no-projections",
            help="Also keep the read models up to date here (else run `duecall projections run`).",
        ),
    ] = True,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve this process's Prometheus metrics on this port (/metrics)."),
    ] = None,
) -> None:
    """Run the workers only (the timer and the execution loop); run as many as you like.

    SIGTERM stops it gracefully within DUECALL_SHUTDOWN_TIMEOUT_SECONDS: attempts in flight
    finish (or are handed back to other workers), no new ones start."""
    settings = Settings()
    configure_logging(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    container = worker_process.build_when_reachable(settings, stop)
    if container is None:
        return
    if metrics_port is not None:
        prometheus_client.start_http_server(metrics_port, addr=settings.host)
    container.start_workers()
    if projections:
        container.start_projections()
    gc_tuning.tune()
    stop.wait()
    worker_process.shut_down(container, settings.shutdown_timeout_seconds)


def _lifecycle(action: str, service_call_id: str, api_url: str, api_key: str | None,
               as_json: bool, body: dict[str, Any] | None = None) -> None:
    path = f"/v1/service-calls/{service_call_id}/{action}"
    call = call_api("POST", api_url, path, api_key, json=body)
    if as_json:
        print_json(call)
    else:
        console.print(f"{call['id']}: [bold]{call['status']}[/] (attempt {call['attempt']}, "
                      f"due {call['due_at']})")


IdArgument = Annotated[str, typer.Argument(help="The call's id.")]


@app.command()
def cancel(
    service_call_id: IdArgument,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the history).")] = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a call that has not finished (a running attempt finishes, without retries)."""
    _lifecycle("cancel", service_call_id, api_url, api_key, as_json, {"reason": reason})


@app.command()
def pause(
    service_call_id: IdArgument,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pause a call that has not started: it will not start until resumed."""
    _lifecycle("pause", service_call_id, api_url, api_key, as_json)


@app.command()
def resume(
    service_call_id: IdArgument,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a paused call (at once if its due time has passed)."""
    _lifecycle("resume", service_call_id, api_url, api_key, as_json)


@app.command()
def retry(
    service_call_id: IdArgument,
    at: Annotated[str | None, typer.Option(help="When, RFC 3339 (default: now).")] = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retry a failed call: a new attempt, same call, history kept."""
    _lifecycle("retry", service_call_id, api_url, api_key, as_json, {"due_at": at})


def main() -> None:
    app()
