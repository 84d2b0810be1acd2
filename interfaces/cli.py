"""The `duecall` command line: run the service, submit calls, look at them."""

import json
import signal
import threading
from typing import Annotated, Any

import prometheus_client
import typer
import uvicorn
from rich.table import Table

from infrastructure.container import Container
from infrastructure.logging import configure_logging
from infrastructure.settings import Settings
from interfaces import cli_audit, cli_projections, cli_queries, cli_tenants, worker_process
from interfaces.api.app import create_app
from interfaces.cli_support import (
    DEFAULT_API,
    ApiOption,
    JsonOption,
    KeyOption,
    call_api,
    console,
)

app = typer.Typer(
    help="duecall: durable scheduled HTTP calls, event-sourced in PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(cli_projections.app, name="projections")
app.command("list")(cli_queries.list_calls)
app.command("replay")(cli_audit.replay)
app.add_typer(cli_audit.app, name="audit")
app.add_typer(cli_tenants.app, name="tenants")



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
    uvicorn.run(
        create_app(settings, with_workers=with_workers),
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
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
    """Run the workers only (timer, execution, orchestration); run as many as you like.

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
    stop.wait()
    worker_process.shut_down(container, settings.shutdown_timeout_seconds)


@app.command()
def submit(
    url: Annotated[str, typer.Argument(help="The URL duecall will call.")],
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
    """Submit a service call: duecall will make this request when it is due."""
    headers = dict(_split_header(h) for h in header or [])
    body: Any = json.loads(json_body) if json_body is not None else data
    payload = {
        "name": name,
        "request": {"method": method, "url": url, "headers": headers, "body": body,
                    "timeout_seconds": timeout, "secret_headers": secret_header or []},
        "due_at": at,
        "delay_seconds": delay,
        "tags": tag or [],
        "correlation_id": correlation_id,
        "retry_policy": {"max_attempts": max_attempts} if max_attempts else None,
    }
    extra = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    call = call_api("POST", api_url, "/v1/service-calls", api_key, json=payload, headers=extra)
    if as_json:
        console.print_json(data=call)
    else:
        console.print(f"submitted [bold]{call['id']}[/] due {call['due_at']} ({call['status']})")


@app.command()
def show(
    service_call_id: Annotated[str, typer.Argument(help="The call's id.")],
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a call's current state and its attempts."""
    call = call_api("GET", api_url, f"/v1/service-calls/{service_call_id}", api_key)
    path = f"/v1/service-calls/{service_call_id}/executions"
    executions = call_api("GET", api_url, path, api_key)["items"]
    if as_json:
        console.print_json(data={**call, "executions": executions})
        return
    request = call["request"]
    console.print(f"[bold]{call['id']}[/]  {call['name']}  status=[bold]{call['status']}[/]  "
                  f"attempt={call['attempt']}")
    console.print(f"{request['method']} {request['url']}  due {call['due_at']}")
    table = Table("attempt", "outcome", "status", "error", "duration ms", "started")
    for e in executions:
        table.add_row(str(e["attempt"]), e["outcome"], str(e["status_code"] or ""),
                      e["error_kind"] or "", f"{e['duration_ms'] or 0:.1f}", e["started_at"])
    console.print(table)


def _lifecycle(action: str, service_call_id: str, api_url: str, api_key: str | None,
               as_json: bool, body: dict[str, Any] | None = None) -> None:
    path = f"/v1/service-calls/{service_call_id}/{action}"
    call = call_api("POST", api_url, path, api_key, json=body)
    if as_json:
        console.print_json(data=call)
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


def _split_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep:
        raise typer.BadParameter(f"header {text!r} is not 'Name: value'")
    return name.strip(), value.strip()


def main() -> None:
    app()
