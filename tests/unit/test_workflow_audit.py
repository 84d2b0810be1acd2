"""The workflow bench's checks and overhead (scripts/workflow_audit.py) on hand-made event
histories: a clean run passes; a step made as two calls, an answer naming another call, a
step never delivered and a run that failed are each named; the overhead of a step that needs
two is measured from the later of their outcomes."""

import sys
from typing import Any

from harness.processes import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import workflow_audit
from workflow_audit import CallFacts

RUN = "0190a0b0-0000-7000-8000-000000000001"
STEPS = ("a", "b")
CALLS = {"a": "0190a0b0-0000-7000-8000-00000000000a", "b": "0190a0b0-0000-7000-8000-00000000000b"}


def stamp(seconds: float) -> dict[str, str]:
    return {"_type_": "datetime_iso", "_data_": f"2026-12-06T05:00:{seconds:09.6f}+00:00"}


def events(final: str = "Succeeded") -> list[tuple[str, dict[str, Any]]]:
    history: list[tuple[str, dict[str, Any]]] = [("Created", {"timestamp": stamp(0)})]
    for offset, step in enumerate(STEPS):
        history.append(("StepStarted", {"step": step, "call_id": CALLS[step], "generation": 1,
                                        "timestamp": stamp(1 + offset)}))
        history.append(("StepSucceeded", {"step": step, "status_code": 200,
                                          "timestamp": stamp(1.5 + offset)}))
    history.append((final, {"timestamp": stamp(3)}))
    return history


def calls() -> dict[str, CallFacts]:
    return {call_id: CallFacts(f"wf:{RUN}:{step}", f"workflow:{RUN}", 0.0,
                               [("Succeeded", 1.0)])
            for step, call_id in CALLS.items()}


def answer() -> dict[str, Any]:
    return {"status": "succeeded", "version": 6, "counts": {"total": 2, "succeeded": 2},
            "steps": {step: {"call_id": call_id, "idempotency_key": f"wf:{RUN}:{step}",
                             "state": "succeeded", "status_code": 200}
                      for step, call_id in CALLS.items()}}


def records() -> list[list[Any]]:
    return [[1.0, f"{call_id}:1", call_id, f"/wf/{RUN}-{step}", "ok"]
            for step, call_id in CALLS.items()]


def broken(found: dict[str, Any]) -> dict[str, int]:
    return {name: n for name, n in found["problems"].items() if n}


def test_a_clean_run_breaks_nothing() -> None:
    found = workflow_audit.audit_runs({RUN: answer()}, {RUN: events()}, calls(), records(),
                                      STEPS)
    assert broken(found) == {}


def test_a_step_made_as_two_calls_is_named() -> None:
    made = calls()
    made["0190a0b0-0000-7000-8000-0000000000ff"] = CallFacts(
        f"wf:{RUN}:b", f"workflow:{RUN}", 0.0, [("Succeeded", 1.0)])
    found = workflow_audit.audit_runs({RUN: answer()}, {RUN: events()}, made, records(), STEPS)
    assert broken(found) == {"step_key_with_two_calls": 1}


def test_an_answer_naming_another_call_and_an_undelivered_step_are_named() -> None:
    shown = answer()
    shown["steps"]["a"]["call_id"] = "0190a0b0-0000-7000-8000-0000000000ee"
    found = workflow_audit.audit_runs({RUN: shown}, {RUN: events()}, calls(), records()[1:],
                                      STEPS)
    assert broken(found) == {"answer_call_differs": 1, "step_never_delivered": 1}


def test_a_failed_run_is_named_by_its_answer_and_its_events() -> None:
    shown = answer() | {"status": "failed"}
    found = workflow_audit.audit_runs({RUN: shown}, {RUN: events("Failed")}, calls(),
                                      records(), STEPS)
    assert broken(found) == {"run_not_succeeded": 1, "run_events_not_succeeded": 1}


def test_overhead_of_a_step_is_from_the_later_outcome_it_needs() -> None:
    made = calls()
    made[CALLS["a"]].terminal = [("Succeeded", 10.0)]
    made[CALLS["b"]].terminal = [("Succeeded", 10.5)]
    joined = "0190a0b0-0000-7000-8000-0000000000cc"
    history = [*events()[:-1], ("StepStarted", {"step": "c", "call_id": joined,
                                                "generation": 1, "timestamp": stamp(1)})]
    arrivals = {joined: 10.52}
    needs = {"join": {"a": [], "b": [], "c": ["a", "b"]}}
    found = workflow_audit.overhead({RUN: history}, made, arrivals, needs, {RUN: "join"})
    assert [round(x, 3) for x in found["total"]["all"]] == [20.0]
    assert found["not_measured"] == {}
