"""`duecall watch`: follow the tenant's live event stream (``GET /v1/events/stream``).

One line per event (coloured on a terminal, plain when piped), or with ``--json`` each
event's JSON as the server sent it, one per line (NDJSON). A dropped connection (or a server
restart) is reconnected with ``Last-Event-ID``, so nothing is missed or shown twice; Ctrl-C
stops it.
"""

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import typer
from rich.text import Text

from application.supervision import Backoff
from interfaces.cli_errors import ApiError, CliError, err_console
from interfaces.cli_support import (
    DEFAULT_API,
    ApiOption,
    JsonOption,
    KeyOption,
    auth_headers,
    check_answer,
    console,
)
from interfaces.timeline import describe

STREAM_PATH = "/v1/events/stream"
# No event and no heartbeat (15 s apart by default) for this long: the connection is dead.
TIMEOUT = httpx.Timeout(90.0, connect=5.0)
MAX_BACKOFF_SECONDS = 5.0
_RETRYABLE = frozenset({429, 502, 503, 504})
_STYLES = {"Succeeded": "green", "Failed": "bold red", "AttemptFailed": "red",
           "Cancelled": "red", "Scheduled": "yellow", "Started": "cyan", "Submitted": "bold",
           "Opened": "red", "Closed": "green"}


@dataclass
class SseMessage:
    id: str | None = None
    event: str | None = None
    data: list[str] = field(default_factory=list)


def sse_messages(lines: Iterable[str]) -> Iterator[SseMessage]:
    """Server-Sent Events messages from the lines of a stream (comments are skipped)."""
    message = SseMessage()
    seen = False
    for line in lines:
        if not line:
            if seen:
                yield message
            message, seen = SseMessage(), False
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        seen = True
        if name == "id":
            message.id = value
        elif name == "event":
            message.event = value
        elif name == "data":
            message.data.append(value)


def event_line(data: dict[str, Any]) -> Text:
    """One event as a line: time, position, type, call, what happened."""
    event_type = str(data.get("type", ""))
    payload = data.get("payload") or {}
    if data.get("aggregate_type") in ("ServiceCall", "Execution"):
        try:
            what = describe(event_type, payload)[0]
        except (KeyError, TypeError, ValueError):  # a shape this client does not know
            what = ""
    else:
        what = " ".join(f"{k}={v}" for k, v in payload.items() if k != "originator_topic")
    about = data.get("service_call_id") or data.get("aggregate_id") or ""
    style = _STYLES.get(event_type.rpartition(".")[2], "")
    return Text.assemble(
        (str(data.get("timestamp") or "")[11:23], "dim"), "  ",
        (f"#{data.get('position')}", "dim"), "  ",
        (event_type, style), "  ", str(about), "  ", what,
    )


@dataclass
class _Follower:
    base: str
    api_key: str | None
    params: dict[str, Any]
    as_json: bool
    last_id: str | None = None  # where to resume (the stream opens by telling it)
    connected: bool = False

    def follow(self) -> None:
        """Print events until the server ends the stream or the connection drops."""
        headers = auth_headers(self.api_key)
        params = dict(self.params)
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
            params.pop("after", None)
        url = self.base.rstrip("/") + STREAM_PATH
        with httpx.stream("GET", url, params=params, headers=headers, timeout=TIMEOUT) as answer:
            check_answer(answer, self.base, self.api_key)
            self.connected = True
            for message in sse_messages(answer.iter_lines()):
                if message.id is not None:
                    self.last_id = message.id
                if message.data:
                    self._show("\n".join(message.data))

    def _show(self, data: str) -> None:
        if self.as_json:
            sys.stdout.write(data + "\n")
            sys.stdout.flush()
        else:
            console.print(event_line(json.loads(data)), soft_wrap=True, highlight=False)


def watch(
    call: Annotated[
        str | None, typer.Option("--call", help="Only this call's events (and its attempts').")
    ] = None,
    event_type: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only this event type, e.g. ServiceCall.Succeeded "
                     "(repeatable, or comma-separated)."),
    ] = None,
    after: Annotated[
        int | None,
        typer.Option("--from", min=0, help="Start after this log position (0: from the first "
                     "event) instead of with the events recorded from now on."),
    ] = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Follow your events live, one line each, until Ctrl-C (reconnects by itself)."""
    params = {"call_id": call, "type": event_type or None, "after": after}
    follower = _Follower(api_url, api_key, {k: v for k, v in params.items() if v is not None},
                         as_json)
    backoff = Backoff(first=0.5, cap=MAX_BACKOFF_SECONDS)
    try:
        while True:
            try:
                follower.follow()
                note = "the server ended the stream"
                backoff.reset()
            except ApiError as error:
                if error.status not in _RETRYABLE or not follower.connected:
                    raise
                note = str(error)
            except httpx.HTTPError as error:
                if not follower.connected:
                    raise CliError(f"cannot follow the event stream of {api_url}: "
                                   f"{error or type(error).__name__}") from error
                note = f"connection lost ({error or type(error).__name__})"
            err_console.print(f"{note}; reconnecting after position {follower.last_id}",
                              style="dim", soft_wrap=True)
            time.sleep(backoff.next())
    except KeyboardInterrupt:
        return
    except BrokenPipeError:  # the reader went away (`duecall watch --json | head -3`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
