"""What each of a workflow run's events says, in words, with a timeline style: shared by the
dashboard's run page (``api/ui_workflows.py``) and ``duecall workflows show RUN --events``."""

from collections.abc import Callable
from typing import Any

Payload = dict[str, Any]
Describe = Callable[[Payload], tuple[str, str]]  # a payload → (what, timeline style)


def _step(p: Payload) -> str:
    return str(p.get("step", ""))


def _why(p: Payload) -> str:
    return f": {p['reason']}" if p.get("reason") else ""


def _code(p: Payload) -> str:
    return f" ({p['status_code']})" if p.get("status_code") is not None else ""


def _failed(p: Payload) -> tuple[str, str]:
    halted = f", halted by {p['halted_by']}" if p.get("halted_by") else ""
    compensation = f", {p['compensation']}" if p.get("compensation") else ""
    return f"run failed{halted}{compensation}", "bold red"


RUN_EVENTS: dict[str, Describe] = {
    "Created": lambda p: (
        f"submitted {p.get('name')!r}: {len(p.get('definition', {}).get('steps', []))} steps",
        "bold",
    ),
    "StepStarted": lambda p: (
        f"{_step(p)} started (generation {p.get('generation', 1)}) → call", "cyan"
    ),
    "StepSkipped": lambda p: (f"{_step(p)} skipped{_why(p)}", "dim"),
    "StepSucceeded": lambda p: (f"{_step(p)} succeeded{_code(p)}", "green"),
    "StepFailed": lambda p: (f"{_step(p)} failed{_code(p)}{_why(p)}", "red"),
    "StepCancelled": lambda p: (f"{_step(p)} cancelled{_why(p)}", "dim"),
    "CompensationStarted": lambda p: (f"{_step(p)} compensating → call", "magenta"),
    "Compensated": lambda p: (f"{_step(p)} compensated{_code(p)}", "magenta"),
    "CompensationFailed": lambda p: (
        f"{_step(p)} compensation failed{_code(p)}{_why(p)}", "red"
    ),
    "Succeeded": lambda p: ("run succeeded", "bold green"),
    "Failed": _failed,
    "Cancelled": lambda p: (f"run cancelled{_why(p)}", "bold red"),
    "Paused": lambda p: ("paused", "magenta"),
    "Resumed": lambda p: ("resumed", "magenta"),
    "RetryRequested": lambda p: (
        f"retry from the failed steps: {', '.join(p.get('steps', []))}", "yellow"
    ),
    "StepRerunRequested": lambda p: (
        f"{_step(p)} re-run by {p.get('actor')} (generation {p.get('generation')})", "yellow"
    ),
}
