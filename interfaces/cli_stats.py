"""`duecall stats`: a small table of the tenant's attempts (from `GET /v1/stats`) and a
sparkline of the throughput per bucket."""

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from interfaces.cli_errors import CliError
from interfaces.cli_support import (
    DEFAULT_API,
    ApiOption,
    JsonOption,
    KeyOption,
    call_api,
    console,
    print_json,
)

BARS = "▁▂▃▄▅▆▇█"
STEPS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
SPARK_WIDTH = 40


def sparkline(values: Sequence[float], width: int = SPARK_WIDTH) -> str:
    """``values`` as bars ▁…█ scaled to their maximum (▁ is nothing at all), at most ``width``
    characters (neighbouring values are added up)."""
    values = list(values)
    if len(values) > width:
        size = math.ceil(len(values) / width)
        values = [sum(values[i:i + size]) for i in range(0, len(values), size)]
    top = max(values, default=0)
    return "".join(
        BARS[0] if v <= 0 or top <= 0 else BARS[max(1, round(v / top * (len(BARS) - 1)))]
        for v in values
    )


def parse_time(text: str, now: datetime) -> datetime:
    """``90s``, ``15m``, ``24h``, ``7d``, ``2w`` ago, or an RFC 3339 time."""
    match = _DURATION.match(text)
    if match:
        return now - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{text!r} is neither a duration (15m, 24h, 7d) nor an RFC 3339 "
                       "time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def auto_bucket(start: datetime, end: datetime) -> str:
    span = end - start
    return "minute" if span <= timedelta(hours=3) else "hour" if span <= timedelta(days=14) \
        else "day"


def stats(
    since: Annotated[
        str, typer.Option("--since", "--from", help="Start: 15m, 24h, 7d ago, or RFC 3339.")
    ] = "1h",
    until: Annotated[
        str | None, typer.Option("--until", "--to", help="End (default now), same forms.")
    ] = None,
    bucket: Annotated[
        str | None,
        typer.Option(help="minute, hour or day (default: by the span: ≤3 h minute, ≤14 d hour)."),
    ] = None,
    group_by: Annotated[
        list[str] | None, typer.Option(help="host, name or status (repeatable).")
    ] = None,
    api_url: ApiOption = DEFAULT_API,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Attempts per bucket: counts, success rate, retries, latency, and a throughput sparkline.

    With --json: the API's answer (`GET /v1/stats`), with the `from` and `to` asked."""
    now = datetime.now(UTC)
    start = parse_time(since, now)
    end = parse_time(until, now) if until else now
    bucket = bucket or auto_bucket(start, end)
    params = {"from": start.isoformat(), "to": end.isoformat(), "bucket": bucket,
              "group_by": group_by or []}
    report = call_api("GET", api_url, "/v1/stats", api_key, params=params)
    if as_json:
        print_json({"from": params["from"], "to": params["to"], **report})
        return
    slots = _slots(start, end, bucket)
    console.print(f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC, attempts per {bucket}"
                  f" ({len(slots)} buckets)", style="bold")
    table = Table("group", "attempts", "ok", "failed", "success", "retries", "mean ms",
                  "worst p95", "worst p99", f"per {bucket}")
    for group, entries in _by_group(report["items"]).items():
        table.add_row(group, *_summary(entries), sparkline(_series(entries, slots)))
    console.print(table)
    meta = report["meta"]
    console.print(f"read model at position {meta['position']} of {meta['head']} "
                  f"(lag {meta['lag']})", style="dim")


def _slots(start: datetime, end: datetime, bucket: str) -> list[datetime]:
    """The start of each bucket from ``start``'s to the one holding ``end``."""
    first = start.astimezone(UTC).replace(second=0, microsecond=0)
    if bucket != "minute":
        first = first.replace(minute=0)
    if bucket == "day":
        first = first.replace(hour=0)
    count = max(1, math.ceil((end - first) / STEPS[bucket]))
    return [first + i * STEPS[bucket] for i in range(count)]


def _by_group(items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        label = " ".join(f"{k}={v}" for k, v in sorted(item["group"].items())) or "all"
        groups.setdefault(label, []).append(item)
    return groups or {"all": []}


def _summary(entries: list[dict[str, Any]]) -> list[str]:
    attempts = sum(e["executions"] for e in entries)
    succeeded = sum(e["succeeded"] for e in entries)
    timed = [(e["mean_ms"], e["executions"]) for e in entries if e["mean_ms"] is not None]
    mean = sum(m * n for m, n in timed) / sum(n for _, n in timed) if timed else None

    def worst(key: str) -> str:
        values = [e[key] for e in entries if e[key] is not None]
        return f"{max(values):.1f}" if values else ""

    return [str(attempts), str(succeeded), str(attempts - succeeded),
            f"{succeeded / attempts:.1%}" if attempts else "",
            str(sum(e["retries"] for e in entries)), f"{mean:.1f}" if mean is not None else "",
            worst("p95_ms"), worst("p99_ms")]


def _series(entries: list[dict[str, Any]], slots: list[datetime]) -> list[float]:
    index = {slot: i for i, slot in enumerate(slots)}
    series = [0.0] * len(slots)
    for entry in entries:
        at = datetime.fromisoformat(entry["bucket"]).astimezone(UTC)
        if at in index:
            series[index[at]] += entry["executions"]
    return series
