"""A call's recorded events (as `GET /v1/service-calls/{id}/events` returns them), or a
workflow run's (`GET /v1/workflows/runs/{id}/events`), as a readable timeline: one line per
event, saying what happened and why (why a retry waited that long)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from interfaces.workflow_timeline import RUN_EVENTS

Payload = dict[str, Any]


@dataclass(frozen=True)
class Line:
    at: str  # the event's time, as recorded
    offset: float  # seconds since the first event
    who: str  # "call", "attempt n", or a run's event's version "v<n>"
    what: str
    style: str = ""


def _status(p: Payload) -> str:
    parts = [p.get("error_kind"), p.get("status_code")]
    return " ".join(str(part) for part in parts if part is not None) or "unknown"


def _scheduled(p: Payload) -> tuple[str, str]:
    attempt, due, delay = p["attempt"], p["due_at"], p.get("delay_seconds")
    waits = f"waits {delay:.1f} s" if delay is not None else f"due {due}"
    text = {
        "backoff": f"attempt {attempt} scheduled: backoff {attempt - 1}: {waits}",
        "retry_after": f"attempt {attempt} scheduled: Retry-After: {waits}",
        "circuit_open": f"attempt {attempt} held: circuit open, due again {due}",
        "manual": f"attempt {attempt} scheduled (manual retry), due {due}",
        "resumed": f"attempt {attempt} due again {due} (resumed)",
    }.get(p["reason"], f"attempt {attempt} scheduled ({p['reason']}), due {due}")
    by = p.get("scheduled_by")
    return (f"{text} (by {by})" if by and by != "duecall" else text), "yellow"


def _submitted(p: Payload) -> tuple[str, str]:
    policy = p.get("retry_policy") or {}
    retries = f"up to {policy.get('max_attempts', '?')} attempts" if policy else "default policy"
    return (f"submitted {p['name']!r}: {p['method']} {p['url']} "
            f"(timeout {p['timeout_seconds']:g} s, {retries}); attempt 1 due {p['due_at']}", "bold")


_CALL: dict[str, Callable[[Payload], tuple[str, str]]] = {
    "Submitted": _submitted,
    "Scheduled": _scheduled,
    "Started": lambda p: (f"attempt {p['attempt']} started", ""),
    "AttemptFailed": lambda p: (
        f"attempt {p['attempt']} failed ({_status(p)}): "
        + ("retryable" if p.get("retryable") else "not retryable"), "red"),
    "Succeeded": lambda p: (
        f"succeeded on attempt {p['attempt']} ({p.get('status_code')}, "
        f"{p.get('duration_ms', 0):.1f} ms)", "bold green"),
    "Failed": lambda p: (
        f"failed after attempt {p['attempt']}: {p.get('reason')} ({_status(p)})", "bold red"),
    "Cancelled": lambda p: (f"cancelled: {p.get('reason') or 'no reason given'}", "bold red"),
    "Paused": lambda p: ("paused", "magenta"),
    "Resumed": lambda p: ("resumed", "magenta"),
    "RetryRequested": lambda p: (
        f"manual retry requested: attempt {p['attempt']}, due {p['due_at']}", "cyan"),
}
_EXECUTION: dict[str, Callable[[Payload], tuple[str, str]]] = {
    "Started": lambda p: (f"→ {p['method']} {p['url']}", "dim"),
    "Succeeded": lambda p: (
        f"← {p.get('status_code')} in {p.get('duration_ms', 0):.1f} ms", "green"),
    "Failed": lambda p: (
        f"✗ {_status(p)} in {p.get('duration_ms', 0):.1f} ms: {p.get('message') or ''}", "red"),
}


def describe(event_type: str, payload: Payload) -> tuple[str, str]:
    """What an event of a call, an execution or a workflow run says, in words, and a rich
    style for it."""
    aggregate, _, kind = event_type.partition(".")
    kinds = {"ServiceCall": _CALL, "Execution": _EXECUTION, "WorkflowRun": RUN_EVENTS}
    described = kinds.get(aggregate, {}).get(kind)
    return described(payload) if described else (f"{event_type} {payload}", "")


def timeline(events: Sequence[dict[str, Any]]) -> list[Line]:
    """One line per event, in the order given (the order they were recorded)."""
    if not events:
        return []
    first = _time(events[0])
    attempts: dict[str, int] = {}  # execution id → its attempt (only Started names it)
    lines = []
    for event in events:
        aggregate = event["type"].partition(".")[0]
        payload = event["payload"]
        if aggregate == "Execution":
            attempts.setdefault(str(event["originator_id"]), payload.get("attempt", 0))
            who = f"attempt {attempts[str(event['originator_id'])]}"
        elif aggregate == "WorkflowRun":
            who = f"v{event.get('version')}"
        else:
            who = "call"
        what, style = describe(event["type"], payload)
        at = _time(event)
        offset = (at - first).total_seconds() if at and first else 0.0
        lines.append(Line(str(event.get("timestamp") or ""), offset, who, what, style))
    return lines


def _time(event: dict[str, Any]) -> datetime | None:
    stamp = event.get("timestamp")
    return datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
