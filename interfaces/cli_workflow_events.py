"""`duecall workflows show RUN --events`: a run's history from `GET
/v1/workflows/runs/{id}/events`, every page of it: its events as a compact timeline (one line
each, long ones cut; ``cli_audit.print_timeline``), then each step's calls with their
attempts under the step."""

from typing import Any
from urllib.parse import quote

from rich.text import Text

from interfaces.cli_audit import print_timeline
from interfaces.cli_support import call_api, console

PAGE = 100  # events per request (the API's most)
MAX_PAGES = 100  # 10,000 events: far past any run's steps; beyond, the command says so
CUT = 120  # characters of what an event says, at most
OUTCOME_STYLE = {"succeeded": "green", "failed": "red", "running": "cyan"}


def run_history(api_url: str, api_key: str | None, run_id: str) -> dict[str, Any]:
    """The run's events, page after page, in one answer of the API's shape (``items`` and
    ``steps`` of every page together; ``next_after`` set only if pages were left)."""
    path = f"/v1/workflows/runs/{quote(run_id, safe='')}/events"
    history: dict[str, Any] = {}
    after = 0
    for _ in range(MAX_PAGES):
        page = call_api("GET", api_url, path, api_key, params={"after": after, "limit": PAGE})
        if not history:
            history = page
        else:
            history["items"] += page["items"]
            for step, calls in page["steps"].items():
                history["steps"].setdefault(step, []).extend(calls)
            history["attempts_meta"] = page["attempts_meta"] or history["attempts_meta"]
            history["next_after"] = page["next_after"]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    return history


def print_history(history: dict[str, Any]) -> None:
    """The events as a timeline, then under each step its calls and their attempts."""
    console.print(Text(f"events: {len(history['items'])}", style="bold"))
    print_timeline(history["items"], cut=CUT)
    if history["next_after"] is not None:
        console.print(f"more events after version {history['next_after']} (--json, or the "
                      "API with after=)", style="dim")
    if history["steps"]:
        console.print(Text("attempts", style="bold"))
    for step_id, calls in history["steps"].items():
        console.print(Text(f"  {step_id}", style="bold"))
        for call in calls:
            console.print(f"    {call['purpose']}, generation {call['generation']}: call "
                          f"{call['call_id']}", style="dim", soft_wrap=True)
            for attempt in call["attempts"]:
                console.print(_attempt(attempt), no_wrap=True)
            if not call["attempts"]:
                console.print("      no attempt yet", style="dim")
    meta = history.get("attempts_meta")
    if meta and meta["stale"]:
        console.print(f"attempts read at position {meta['position']} of {meta['head']}: "
                      "some may be missing yet", style="yellow")


def _attempt(attempt: dict[str, Any]) -> Text:
    """``attempt 1  failed  500 http_error  12:00:03.123 → 12:00:03.200  77.0 ms``."""
    outcome = attempt["outcome"]
    answer = " ".join(str(part) for part in (attempt["status_code"], attempt["error_kind"])
                      if part is not None)
    finished = attempt["finished_at"]
    took = attempt["duration_ms"]
    return Text.assemble(
        f"      attempt {attempt['attempt']}  ", (outcome, OUTCOME_STYLE.get(outcome, "")),
        f"  {answer}" if answer else "",
        f"  {attempt['started_at'][11:23]}", f" → {finished[11:23]}" if finished else "",
        f"  {took:.1f} ms" if took is not None else "",
    )
