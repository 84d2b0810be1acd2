"""What every `duecall` client command shares: options, the console, calling the API."""

from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from infrastructure.container import Container
from infrastructure.logging import configure_logging
from infrastructure.settings import Settings

console = Console()

DEFAULT_API = "http://127.0.0.1:8000"
ApiOption = Annotated[
    str, typer.Option("--api", envvar="DUECALL_API_URL", help="Base URL of the duecall API.")
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="DUECALL_API_KEY", help="Your API key (the tenant is the key's)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print raw JSON (for scripts).")]


def call_api(
    method: str, base: str, path: str, api_key: str | None, **kwargs: Any
) -> dict[str, Any]:
    """Call the API; a problem (or no answer) is printed as one sentence and exits 1."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    headers.update(kwargs.pop("headers", None) or {})
    try:
        response = httpx.request(method, base.rstrip("/") + path, headers=headers, **kwargs)
    except httpx.HTTPError as error:
        console.print(f"[red]cannot reach the duecall API at {base}[/]: {error}")
        raise typer.Exit(1) from None
    body: dict[str, Any] = response.json() if response.content else {}
    if response.status_code >= 400:
        console.print(f"[red]{body.get('title', 'error')}[/]: {body.get('detail', '')}")
        raise typer.Exit(1)
    return body


def local_container() -> Container:
    """The service's parts built here, on the configured database (for operator commands)."""
    settings = Settings()
    configure_logging(settings)
    return Container.build(settings)
