"""`duecall schedules ...`: recurring schedules over the API (create, list, show, update, pause,
resume, delete, trigger, backfill, preview, fires, events).

A spec is given by options (`--cron` or `--every`, `--tz`, `--overlap`, ...) or whole as JSON
(`--file`, the API's body); options given with `--file` override the file's spec fields. One
module over 200 lines on purpose: the command group with all its commands, as `cli.py`.
"""

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Column, Table
from rich.text import Text

from interfaces.cli_errors import CliError
from interfaces.cli_queries import when
from interfaces.cli_submit import _headers, _read
from interfaces.cli_support import (
    DEFAULT_API,
    ApiOption,
    JsonOption,
    KeyOption,
    call_api,
    console,
    print_json,
    print_ndjson,
)

app = typer.Typer(
    help="Recurring schedules: cron or interval specs whose fires are service calls.\n\n"
    "Example:\n  duecall schedules create https://example.com/hook --name nightly "
    "--cron '30 2 * * *' --tz America/New_York\n\nGuide: docs/schedules.md",
    no_args_is_help=True,
)
PATH = "/v1/schedules"
STATUS_STYLE = {"active": "green", "paused": "magenta", "finished": "cyan", "deleted": "red"}
ACTION_STYLE = {"fire": "green", "skip": "yellow", "buffer": "cyan"}
# option name → spec field (read from the command's parameters: see ``_given_spec``)
SPEC_OPTIONS = {
    "cron": "cron",
    "every": "interval_seconds",
    "starting": "starting",
    "anchor": "anchor",
    "tz": "timezone",
    "start_at": "start_at",
    "end_at": "end_at",
    "max_runs": "max_runs",
    "gap": "gap",
    "fold": "fold",
    "catchup_window": "catchup_window_seconds",
    "on_missed": "on_missed",
    "max_catchup": "max_catchup",
    "catchup_rate": "catchup_rate_per_second",
    "overlap": "overlap",
    "jitter": "jitter_seconds",
    "pause_after_failures": "pause_after_failures",
}
# a spec field given replaces the ones it excludes (the spec takes one of each pair)
_REPLACES = {
    "cron": ("interval_seconds", "starting", "anchor"),
    "interval_seconds": ("cron",),
    "starting": ("anchor",),
    "anchor": ("starting",),
}

IdArgument = Annotated[str, typer.Argument(help="The schedule's id.")]
FileOption = Annotated[
    str | None,
    typer.Option(
        "--file", "-f", help="JSON as the API takes it ('-' reads stdin); options override it."
    ),
]
Cron = Annotated[
    str | None,
    typer.Option(
        help="5-7 fields: (second) minute hour day-of-month month day-of-week (year); "
        "L, 5L, MON#2, @daily..."
    ),
]
Every = Annotated[
    int | None,
    typer.Option(
        "--every", metavar="SECONDS", help="An interval instead of a cron: every SECONDS (>= 1)."
    ),
]
Starting = Annotated[
    str | None, typer.Option(help="An interval's phase: a local HH:MM[:SS] one fire falls on.")
]
Anchor = Annotated[
    str | None, typer.Option(help="An interval's phase: an instant (RFC 3339) one fire falls on.")
]
Tz = Annotated[
    str | None,
    typer.Option(
        "--tz", "--timezone", help="IANA time zone of the cron's wall clock (default UTC)."
    ),
]
StartAt = Annotated[str | None, typer.Option(help="No fire before (RFC 3339, inclusive).")]
EndAt = Annotated[str | None, typer.Option(help="No fire after (RFC 3339, inclusive).")]
MaxRuns = Annotated[int | None, typer.Option(help="Finished after this many fires.")]
Gap = Annotated[
    str | None, typer.Option(help="A wall time that does not exist (DST): shift (default) or skip.")
]
Fold = Annotated[
    str | None,
    typer.Option(help="A wall time that happens twice (DST): first (default), last or both."),
]
CatchupWindow = Annotated[
    int | None,
    typer.Option(metavar="SECONDS", help="A fire later than this was missed (default 60)."),
]
OnMissed = Annotated[str | None, typer.Option(help="Missed fires: skip, latest (default) or all.")]
MaxCatchup = Annotated[
    int | None, typer.Option(help="With --on-missed all: at most this many (default 100).")
]
CatchupRate = Annotated[
    float | None,
    typer.Option(
        metavar="PER_SECOND",
        help="Several fires due at once: at most this many a second (default 10).",
    ),
]
Overlap = Annotated[
    str | None,
    typer.Option(
        help="The previous fire's call still running: skip, buffer_one, buffer_all, "
        "cancel_other or allow_all (default)."
    ),
]
Jitter = Annotated[
    float | None,
    typer.Option(
        metavar="SECONDS", help="Delay each fire by up to this (deterministic per nominal time)."
    ),
]
PauseAfterFailures = Annotated[
    int | None, typer.Option(metavar="N", help="Pause after N failed fires in a row.")
]


def _given_spec(ctx: typer.Context) -> dict[str, Any]:
    """The spec fields given as options to the command running."""
    return {
        SPEC_OPTIONS[name]: value
        for name, value in ctx.params.items()
        if name in SPEC_OPTIONS and value is not None
    }


def _merged(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``base``'s spec fields (nulls left out) with the ``given`` ones over them."""
    spec = {name: value for name, value in base.items() if value is not None}
    for name in given:
        for excluded in _REPLACES.get(name, ()):
            spec.pop(excluded, None)
    return {**spec, **given}


def json_document(file: str) -> dict[str, Any]:
    """The JSON object in ``file`` ('-': stdin)."""
    origin = "stdin" if file == "-" else file
    try:
        document = json.loads(_read(file))
    except json.JSONDecodeError as error:
        raise CliError(
            f"{origin} is not valid JSON: line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    if not isinstance(document, dict):
        raise CliError(f"{origin} does not hold a JSON object")
    return document


# -- output for people -------------------------------------------------------------------------


def _status(schedule: dict[str, Any]) -> Text:
    status = schedule["status"]
    reason = schedule.get("pause_reason")
    label = f"{status} ({reason})" if status == "paused" and reason else status
    return Text(label, style=STATUS_STYLE.get(status, ""))


def _cadence(spec: dict[str, Any]) -> str:
    """`cron 30 2 * * *` or `every 900 s starting 00:05`."""
    if spec.get("cron"):
        return f"cron {spec['cron']}"
    phase = spec.get("starting") or spec.get("anchor")
    return f"every {spec['interval_seconds']} s" + (f" from {phase}" if phase else "")


def _zoned(stamp: str | None, timezone: str) -> str:
    """An API timestamp as UTC, and on the zone's clock when that is not UTC."""
    if not stamp:
        return ""
    if timezone == "UTC":
        return f"{when(stamp)} UTC"
    local = datetime.fromisoformat(stamp).astimezone(ZoneInfo(timezone))
    return f"{when(stamp)} UTC ({local:%Y-%m-%d %H:%M:%S %Z})"


def print_schedule(schedule: dict[str, Any]) -> None:
    spec, counts = schedule["spec"], schedule["counts"]
    console.print(
        Text.assemble((schedule["id"], "bold"), f"  {schedule['name']}  ", _status(schedule))
    )
    console.print(
        f"{_cadence(spec)}  in {spec['timezone']}  (gap {spec['gap']}, fold "
        f"{spec['fold']}, overlap {spec['overlap']}, on missed {spec['on_missed']})",
        markup=False,
        soft_wrap=True,
    )
    console.print(_what_it_fires(schedule), markup=False, soft_wrap=True)
    facts = {
        "next fire": _zoned(schedule["next_fire_at"], spec["timezone"]),
        "last fired": _zoned(schedule["last_fired_nominal"], spec["timezone"]),
        "running": schedule["running"] or "",
        "buffered": schedule["buffered"] or "",
    }
    console.print("  ".join(f"{k}: {v}" for k, v in facts.items() if v), markup=False)
    console.print("  ".join(f"{k} {v}" for k, v in counts.items()), style="dim")


def _what_it_fires(schedule: dict[str, Any]) -> str:
    """The call each fire submits, or the workflow each fire starts a run of."""
    if schedule.get("workflow"):
        definition = schedule["workflow"]["definition"]
        steps = len(definition.get("steps", []))
        return f"workflow run of {definition.get('name')} ({steps} steps)"
    request = schedule["call"]["request"]
    return f"{request['method']} {request['url']}"


def _show(schedule: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(schedule)
    else:
        print_schedule(schedule)


def _preview_table(preview: dict[str, Any]) -> None:
    table = Table("nominal (UTC)", f"local ({preview['timezone']})", "DST", "fires")
    for item in preview["items"]:
        table.add_row(
            when(item["nominal"]),
            item["zoned"].replace("T", " "),
            item["dst_note"] or "",
            "yes" if item["fires"] else "no",
        )
    console.print(table)
    console.print(f"tzdata {preview['tzdata']}", style="dim")


# -- commands -----------------------------------------------------------------------------------


@app.command()
def create(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Argument(help="The URL each fire calls.")] = None,
    file: FileOption = None,
    name: Annotated[str | None, typer.Option(help="The schedule's name.")] = None,
    cron: Cron = None,
    every: Every = None,
    starting: Starting = None,
    anchor: Anchor = None,
    tz: Tz = None,
    start_at: StartAt = None,
    end_at: EndAt = None,
    max_runs: MaxRuns = None,
    gap: Gap = None,
    fold: Fold = None,
    catchup_window: CatchupWindow = None,
    on_missed: OnMissed = None,
    max_catchup: MaxCatchup = None,
    catchup_rate: CatchupRate = None,
    overlap: Overlap = None,
    jitter: Jitter = None,
    pause_after_failures: PauseAfterFailures = None,
    method: Annotated[str | None, typer.Option("--method", "-X", help="Default POST.")] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="'Name: value' (repeatable).")
    ] = None,
    secret_header: Annotated[
        list[str] | None, typer.Option(help="A header name whose value is secret (repeatable).")
    ] = None,
    data: Annotated[
        str | None, typer.Option("--data", "-d", "--body", help="Body, sent as is.")
    ] = None,
    json_body: Annotated[
        str | None, typer.Option("--json-body", help="Body as JSON text, sent as JSON.")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Request timeout, seconds.")] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts per fire.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag of each fire (repeatable).")] = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a schedule (active at once) from options, or from the API's body in a file.

    Examples:
      duecall schedules create https://example.com/hooks/report --name nightly-report \\
        --cron '30 2 * * *' --tz America/New_York --overlap skip
      duecall schedules create -f schedule.json --name copy-of-it

    Each fire starts a workflow run instead of a call when the file's body has
    {"workflow": {"definition": {...}, "input": {...}}} in place of "call".
    """
    call = {
        "method": method,
        "url": url,
        "headers": _headers(header) or None,
        "secret_headers": secret_header,
        "body": _body(data, json_body),
        "timeout_seconds": timeout,
    }
    request = {k: v for k, v in call.items() if v is not None}
    retry = {"max_attempts": max_attempts} if max_attempts else None
    if file is not None and (request or retry or tag):
        raise CliError(
            "the call's options (URL, -X, -H, -d, ...) come without --file: "
            "put the call in the file"
        )
    if file is None and url is None:
        raise CliError(
            "give the URL each fire calls, or --file FILE (-f -: stdin) with the schedule as JSON"
        )
    body = (
        json_document(file)
        if file
        else {"call": {"request": request, "retry_policy": retry, "tags": tag or []}}
    )
    body = _with_overrides(body, name, _given_spec(ctx))
    _show(call_api("POST", api_url, PATH, api_key, json=body), as_json)


def _body(data: str | None, json_body: str | None) -> Any:
    try:
        return json.loads(json_body) if json_body is not None else data
    except ValueError as error:
        raise CliError(f"--json-body is not valid JSON: {error}") from None


def _with_overrides(body: dict[str, Any], name: str | None, spec: dict[str, Any]) -> dict[str, Any]:
    """``body`` with ``--name`` and the spec options given over its own."""
    body = {**body, **({"name": name} if name is not None else {})}
    if spec or "spec" not in body:
        body["spec"] = _merged(body.get("spec") or {}, spec)
    return body


@app.command("list")
def list_schedules(
    status: Annotated[
        list[str] | None,
        typer.Option(
            help="active, paused, finished or deleted (repeatable; default: all but deleted)."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Only schedules of this name.")] = None,
    sort: Annotated[str, typer.Option(help="-created (newest first) or next_fire.")] = "-created",
    limit: Annotated[int, typer.Option(min=1, max=100, help="Schedules per page.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Next page, from a previous list.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every page, not just one.")] = False,
    total: Annotated[bool, typer.Option("--total", help="Also count every match.")] = False,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List schedules (from the read model), with their next fire and counts.

    With --json: the page as the API answers it; with --all --json: NDJSON, one a line.

    Example:
      duecall schedules list --status active --status paused --sort next_fire
    """
    query = {
        k: v
        for k, v in {
            "status": status or [],
            "name": name,
            "sort": sort,
            "limit": limit,
            "cursor": cursor,
            "include_total": total or None,
        }.items()
        if v
    }
    pages = _pages(api_url, api_key, query, every)
    if as_json and not every:
        print_json(next(pages))
        return
    items: list[dict[str, Any]] = []
    last: dict[str, Any] = {}
    for last in pages:
        items.extend(last["items"])
    if as_json:
        for item in items:
            print_ndjson(item)
        return
    _list_table(items, last, every)


def _pages(
    api_url: str, api_key: str | None, query: dict[str, Any], every: bool
) -> Iterator[dict[str, Any]]:
    """The first page of schedules; with ``every``, each next one too."""
    while True:
        page = call_api("GET", api_url, PATH, api_key, params=query)
        yield page
        if not every or not page["next_cursor"]:
            return
        query = {**query, "cursor": page["next_cursor"]}


def _list_table(items: list[dict[str, Any]], last: dict[str, Any], every: bool) -> None:
    table = Table(
        Column("id", no_wrap=True, min_width=36),
        "name",
        "status",
        "when",
        "zone",
        "next fire (UTC)",
        "last fired (UTC)",
        "fired",
        "failed",
        "missed",
        "skipped",
    )
    for s in items:
        spec = {"cron": s["cron"], "interval_seconds": s["interval_seconds"]}
        table.add_row(
            s["id"],
            s["name"],
            _status(s),
            _cadence(spec),
            s["timezone"],
            when(s["next_fire_at"]),
            when(s["last_fired_nominal"]),
            str(s["fired"]),
            str(s["failed"]),
            str(s["missed"]),
            str(s["skipped"]),
        )
    console.print(table)
    meta = last["meta"]
    counted = f"{last['total']} matching; " if last.get("total") is not None else ""
    console.print(
        f"{counted}read model at position {meta['position']} of {meta['head']} (lag {meta['lag']})",
        style="dim",
    )
    if last["next_cursor"] and not every:
        console.print(
            f"more: --cursor {last['next_cursor']}  (or --all)", style="dim", soft_wrap=True
        )


@app.command()
def show(
    schedule_id: IdArgument,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a schedule as its events make it: spec, call, next and last fire, counts.

    Example:
      duecall schedules show 61da8f2a-66dc-43a1-9196-6eae9882f1cb
    """
    _show(call_api("GET", api_url, f"{PATH}/{schedule_id}", api_key), as_json)


@app.command()
def update(
    ctx: typer.Context,
    schedule_id: IdArgument,
    file: FileOption = None,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    cron: Cron = None,
    every: Every = None,
    starting: Starting = None,
    anchor: Anchor = None,
    tz: Tz = None,
    start_at: StartAt = None,
    end_at: EndAt = None,
    max_runs: MaxRuns = None,
    gap: Gap = None,
    fold: Fold = None,
    catchup_window: CatchupWindow = None,
    on_missed: OnMissed = None,
    max_catchup: MaxCatchup = None,
    catchup_rate: CatchupRate = None,
    overlap: Overlap = None,
    jitter: Jitter = None,
    pause_after_failures: PauseAfterFailures = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a schedule's name, spec or call, in force from now.

    Spec options change only those fields of the spec in force (it is read first: the API
    replaces a spec whole). A new call: --file with the PATCH body, {"call": {...}}.

    Examples:
      duecall schedules update $SID --cron '0 3 * * *' --overlap skip
      duecall schedules update $SID -f new-call.json
    """
    path = f"{PATH}/{schedule_id}"
    patch = json_document(file) if file else {}
    patch = {**patch, **({"name": name} if name is not None else {})}
    given = _given_spec(ctx)
    if given:
        base = patch.get("spec") or call_api("GET", api_url, path, api_key)["spec"]
        patch["spec"] = _merged(base, given)
    if not patch:
        raise CliError(
            "nothing to change: give --file, --name or spec options (--cron, --every, --tz, ...)"
        )
    _show(call_api("PATCH", api_url, path, api_key, json=patch), as_json)


def _command(action: str, method: str = "POST") -> Callable[..., None]:
    """A command that sends ``action`` to one schedule and shows the schedule after it."""

    def command(
        schedule_id: IdArgument,
        api_url: ApiOption = DEFAULT_API,
        api_key: KeyOption = None,
        as_json: JsonOption = False,
    ) -> None:
        path = f"{PATH}/{schedule_id}" + (f"/{action}" if method == "POST" else "")
        _show(call_api(method, api_url, path, api_key), as_json)

    return command


app.command(
    "pause",
    help="Pause an active schedule: no fires until resumed.\n\n"
    "Example:\n  duecall schedules pause $SID",
)(_command("pause"))
app.command(
    "resume",
    help="Resume a paused schedule; times due meanwhile are missed ones "
    "(--on-missed).\n\nExample:\n  duecall schedules resume $SID",
)(_command("resume"))
app.command(
    "delete",
    help="Delete a schedule: no more fires; its history stays readable."
    "\n\nExample:\n  duecall schedules delete $SID",
)(_command("delete", "DELETE"))


@app.command()
def trigger(
    schedule_id: IdArgument,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fire once now, out of schedule (not a run; no overlap rule).

    Example:
      duecall schedules trigger $SID
    """
    result = call_api("POST", api_url, f"{PATH}/{schedule_id}/trigger", api_key)
    if as_json:
        print_json(result)
        return
    call = result["call"]
    if call is None:  # a workflow schedule: a run started now
        run = result["run"]
        console.print(f"started run [bold]{run['id']}[/] ({run['status']})")
    else:
        console.print(f"fired [bold]{call['id']}[/] due {call['due_at']} ({call['status']})")
    fired = call or result["run"]
    console.print(f"idempotency key {fired['idempotency_key']}", style="dim", soft_wrap=True)


@app.command()
def backfill(
    schedule_id: IdArgument,
    start: Annotated[str, typer.Option("--from", help="First nominal time (RFC 3339).")],
    end: Annotated[str, typer.Option("--to", help="Last nominal time (RFC 3339, inclusive).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be fired, skipped, buffered.")
    ] = False,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fire the nominal times from --from to --to that were never fired.

    By the overlap policy, at the catch-up rate; --dry-run only says what it would do.

    Example:
      duecall schedules backfill $SID --from 2026-12-01T00:00:00Z --to 2026-12-03T23:59:59Z \\
        --dry-run
    """
    body = {"start": start, "end": end, "dry_run": dry_run}
    result = call_api("POST", api_url, f"{PATH}/{schedule_id}/backfill", api_key, json=body)
    if as_json:
        print_json(result)
        return
    table = Table("nominal (UTC)", "local", "DST", "action", "due / reason", "call / run")
    for item in result["items"]:
        table.add_row(
            when(item["nominal"]),
            item["local"].replace("T", " "),
            item["dst_note"] or "",
            Text(item["action"], ACTION_STYLE[item["action"]]),
            when(item["due_at"]) or item["reason"] or "",
            item["call_id"] or item.get("run_id") or "",
        )
    console.print(table)
    verb = "would fire" if dry_run else "fired"
    fires = sum(1 for item in result["items"] if item["action"] == "fire")
    console.print(
        f"{verb} {fires} of {len(result['items'])} nominal times"
        + ("; more in the range: backfill again from after the last" if result["more"] else "")
    )


@app.command()
def preview(
    ctx: typer.Context,
    schedule_id: Annotated[
        str | None,
        typer.Argument(help="A schedule's id; without it, the spec of --file or the options."),
    ] = None,
    count: Annotated[int, typer.Option(min=1, max=100, help="How many fire times.")] = 10,
    after: Annotated[str | None, typer.Option(help="After this time (default now).")] = None,
    file: FileOption = None,
    cron: Cron = None,
    every: Every = None,
    starting: Starting = None,
    anchor: Anchor = None,
    tz: Tz = None,
    start_at: StartAt = None,
    end_at: EndAt = None,
    max_runs: MaxRuns = None,
    gap: Gap = None,
    fold: Fold = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """The next fire times, wall times and DST notes of a schedule, or of a spec.

    A spec (from --file or the options) is checked as a create checks it; nothing is stored.

    Examples:
      duecall schedules preview $SID --count 5
      duecall schedules preview --cron '30 2 * * *' --tz America/New_York --gap skip \\
        --after 2030-03-09T00:00:00Z --count 3
    """
    given = _given_spec(ctx)
    if schedule_id is not None:
        if file is not None or given:
            raise CliError("give a schedule's id, or a spec (--file or options), not both")
        params = {k: v for k, v in {"count": count, "after": after}.items() if v}
        result = call_api("GET", api_url, f"{PATH}/{schedule_id}/preview", api_key, params=params)
    else:
        document = json_document(file) if file else {}
        spec = _merged(document.get("spec", document), given)
        body = {"spec": spec, "count": count, "after": after}
        result = call_api("POST", api_url, f"{PATH}:preview", api_key, json=body)
    if as_json:
        print_json(result)
    else:
        _preview_table(result)


@app.command()
def fires(
    schedule_id: IdArgument,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Fires per page.")] = 20,
    cursor: Annotated[int | None, typer.Option(help="Older fires, from a previous page.")] = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """A schedule's fires (the calls it made, or runs it started), newest first, with each
    one's status now.

    Example:
      duecall schedules fires $SID --limit 50
    """
    params = {k: v for k, v in {"limit": limit, "cursor": cursor}.items() if v}
    page = call_api("GET", api_url, f"{PATH}/{schedule_id}/fires", api_key, params=params)
    if as_json:
        print_json(page)
        return
    table = Table(
        Column("call / run", no_wrap=True, min_width=36),
        "kind",
        "nominal (UTC)",
        "due (UTC)",
        "local",
        "DST",
        "status",
    )
    for f in page["items"]:
        table.add_row(
            f["call_id"] or f.get("run_id") or "",
            f["kind"],
            when(f["nominal"]),
            when(f["due_at"]),
            (f["local"] or "").replace("T", " "),
            f["dst_note"] or "",
            f["call_status"] or f.get("run_status") or "",
        )
    console.print(table)
    if page["next_cursor"]:
        console.print(f"older: --cursor {page['next_cursor']}", style="dim")


# payload fields worth a glance in `events`, in this order
_EVENT_FACTS = (
    "nominal",
    "actual",
    "call_id",
    "reason",
    "missed",
    "caught_up",
    "on_missed",
    "dst_note",
    "consecutive_failures",
    "next_nominal",
    "tzdata",
)


@app.command()
def events(
    schedule_id: IdArgument,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Events per page.")] = 50,
    cursor: Annotated[
        int | None, typer.Option(help="Go on from this version (a previous page's next_cursor).")
    ] = None,
    oldest_first: Annotated[
        bool, typer.Option("--oldest-first", help="From the first event on (default: newest).")
    ] = False,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """A schedule's events as recorded (fires, skips and why, catch-ups, pauses...), newest
    first, a page at a time.

    Example:
      duecall schedules events $SID --limit 20
      duecall schedules events $SID --oldest-first --json
    """
    params: dict[str, Any] = {"limit": limit, "sort": "version" if oldest_first else "-version"}
    if cursor is not None:
        params["cursor"] = cursor
    history = call_api("GET", api_url, f"{PATH}/{schedule_id}/events", api_key, params=params)
    if as_json:
        print_json(history)
        return
    table = Table("version", "recorded (UTC)", "event", "facts")
    for e in history["items"]:
        payload = e["payload"]
        facts = "  ".join(
            f"{k}={payload[k]}" for k in _EVENT_FACTS if payload.get(k) not in (None, "")
        )
        table.add_row(
            str(e["version"]),
            when(e["timestamp"]),
            e["type"].removeprefix("Schedule."),
            Text(facts),
        )
    console.print(table)
    if history.get("next_cursor"):
        console.print(f"more: --cursor {history['next_cursor']}", style="dim")
