"""What every `duecall` client command shares: options, the console, output, calling the API.

Output conventions (for scripts): without ``--json`` a command prints for people (colour on
a terminal, plain text when piped); with ``--json`` a command that answers once prints one
JSON document on stdout, and a command that streams (``list --all``, ``watch``) prints NDJSON,
one JSON object per line. Errors go to stderr as one sentence, with exit code 1 (see
``interfaces.cli_errors``).
"""

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console, ConsoleDimensions

from infrastructure.container import Container
from infrastructure.logging import configure_logging
from infrastructure.settings import Settings
from interfaces.cli_errors import ApiError, CliError, problem_fields

PIPED_WIDTH = 1000  # when not on a terminal: lines as long as their content


class _Console(Console):
    """rich's Console; but writing to a pipe or a file (and COLUMNS unset), its lines are
    as wide as their content, so a table is not squeezed into 80 columns with its cells
    wrapped over several lines where a script reads it."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self.is_terminal or self._width is not None or "COLUMNS" in self._environ:
            return size
        return ConsoleDimensions(PIPED_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = _Console(highlight=False)  # colour says what is what, not what looks like a number

DEFAULT_API = "http://127.0.0.1:8000"
ApiOption = Annotated[
    str,
    typer.Option("--url", "--api", envvar="DUECALL_API_URL", help="Base URL of the duecall API."),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="DUECALL_API_KEY", help="Your API key (the tenant is the key's)."
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts (NDJSON for streams).")
]
TIMEOUT = httpx.Timeout(60.0, connect=5.0)


def print_json(data: Any) -> None:
    """One JSON document on stdout (indented; coloured only on a terminal)."""
    console.print_json(data=data, default=str)


def print_ndjson(item: Any) -> None:
    """One line of NDJSON on stdout, flushed (for streams)."""
    sys.stdout.write(json.dumps(item, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def auth_headers(api_key: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return {**headers, **(extra or {})}


def call_api(
    method: str, base: str, path: str, api_key: str | None, **kwargs: Any
) -> dict[str, Any]:
    """Call the API and return its JSON answer; no answer or an error answer raises
    ``CliError`` (``ApiError``) with one sentence saying what went wrong."""
    headers = auth_headers(api_key, kwargs.pop("headers", None))
    with reaching(base):
        response = httpx.request(
            method, base.rstrip("/") + path, headers=headers, timeout=TIMEOUT, **kwargs
        )
    check_answer(response, base, api_key)
    body: dict[str, Any] = response.json() if response.content else {}
    return body


@contextmanager
def reaching(base: str) -> Iterator[None]:
    """Around httpx calls to the API at ``base``: no answer → ``CliError``, one sentence."""
    try:
        yield
    except httpx.ConnectError as error:
        raise CliError(f"cannot reach duecall at {base}: is it running?") from error
    except httpx.TimeoutException as error:
        raise CliError(f"duecall at {base} did not answer in time; try again") from error
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        raise CliError(f"cannot talk to duecall at {base}: {error}") from error


def check_answer(response: httpx.Response, base: str, api_key: str | None) -> None:
    """Raise ``ApiError`` (one sentence) if ``response`` is an error (reads a stream's body)."""
    if response.status_code < 400:
        return
    response.read()
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    message = _problem_sentence(response, problem, base, api_key)
    raise ApiError(message, response.status_code, problem)


def _problem_sentence(
    response: httpx.Response, problem: dict[str, Any], base: str, api_key: str | None
) -> str:
    status = response.status_code
    detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
    fields = problem_fields(problem)
    if status == 401:
        if not api_key:
            return "no API key given: pass --api-key or set DUECALL_API_KEY"
        return f"the API key was refused by {base} ({detail}): check --api-key / DUECALL_API_KEY"
    if status == 404:
        return f"not found: {detail}"
    if status in (413, 422) and fields:
        what = "too large" if status == 413 else "invalid request"
        return f"{what}: " + "; ".join(f"{field}: {message}" for field, message in fields)
    if status == 429:
        wait = response.headers.get("Retry-After", "1")
        return f"too many requests with this API key ({detail}); try again in {wait} s"
    if status == 503:
        return f"duecall at {base} is unavailable ({detail}); try again shortly"
    return f"{problem.get('title') or response.reason_phrase} ({status}): {detail}"


def local_container() -> Container:
    """The service's parts built here, on the configured database (for operator commands)."""
    settings = Settings()
    configure_logging(settings)
    return Container.build(settings)
