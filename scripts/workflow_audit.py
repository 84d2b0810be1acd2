"""The workflow bench's readings and checks (scripts/bench_workflows.py): what the event store
says about the runs and their steps' calls, the engine overhead between a step's recorded
outcome and its successor's request at the target, and the chaos phase's invariants.

Importable on its own:

    runs = read_runs(database_url)                    # run id -> its events, in order
    calls = read_calls(database_url)                  # call id -> key, origin, outcome, times
    overhead(runs, calls, first_arrivals(records), needs)
    audit_runs(answers, runs, calls, records, steps)  # the chaos phase's workflow checks
    audit_run_rows(database_url, answers, runs)       # the workflow runs read model
A step's call is named by its target path's last segment, ``<run id>-<step id>`` (the
definitions put ``{{ run.id }}`` in every URL), so scripts/chaos_audit.py's checks of calls,
executions and deliveries apply as they are, with that segment as the call's token.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from chaos_audit import TERMINAL, _ts, _uuid

from projections.workflow_runs import TABLE as RUNS_TABLE

RUN_TERMINAL = ("Succeeded", "Failed", "Cancelled")


# -- reading the event store ----------------------------------------------------------------------


def read_runs(url: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Every WorkflowRun aggregate's events (name, state), in recorded order."""
    runs: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    with psycopg.connect(url) as conn, conn.cursor(name="runs") as cursor:
        cursor.itersize = 5000
        cursor.execute(
            "SELECT originator_id, topic, state FROM duecall_events "
            "WHERE topic LIKE 'duecall:WorkflowRun.%%' ORDER BY notification_id"
        )
        for originator_id, topic, state in cursor:
            runs[str(originator_id)].append(
                (topic.rpartition(".")[2], orjson.loads(bytes(state)))
            )
    return dict(runs)


@dataclass
class CallFacts:
    """What the store says of one call: its key and origin, when it was submitted, and its
    terminal event (name, timestamp)."""

    key: str | None = None
    origin: str | None = None
    submitted: float | None = None
    terminal: list[tuple[str, float]] = field(default_factory=list)

    @property
    def status(self) -> str | None:
        return TERMINAL[self.terminal[0][0]] if self.terminal else None

    @property
    def outcome_at(self) -> float | None:
        """The timestamp of its (first) terminal event: its recorded outcome."""
        return self.terminal[0][1] if self.terminal else None


def read_calls(url: str) -> dict[str, CallFacts]:
    """Every call's Submitted and terminal events."""
    topics = [f"duecall:ServiceCall.{name}" for name in ("Submitted", *TERMINAL)]
    calls: dict[str, CallFacts] = defaultdict(CallFacts)
    with psycopg.connect(url) as conn, conn.cursor(name="calls") as cursor:
        cursor.itersize = 5000
        cursor.execute(
            "SELECT originator_id, topic, state FROM duecall_events WHERE topic = ANY(%s) "
            "ORDER BY notification_id",
            (topics,),
        )
        for originator_id, topic, raw in cursor:
            state = orjson.loads(bytes(raw))
            facts = calls[str(originator_id)]
            event = topic.rpartition(".")[2]
            if event == "Submitted":
                facts.key, facts.origin = state.get("idempotency_key"), state.get("origin")
                facts.submitted = _ts(state)
            else:
                facts.terminal.append((event, _ts(state)))
    return dict(calls)


def first_arrivals(records: Sequence[Sequence[Any]]) -> dict[str, float]:
    """Each call's first delivery at the target (``time.time()``), by the call id its
    ``Idempotency-Key: <call id>:<attempt>`` names."""
    first: dict[str, float] = {}
    for arrival, key, *_ in records:
        call_id = str(key or "").rpartition(":")[0]
        if call_id and (call_id not in first or arrival < first[call_id]):
            first[call_id] = float(arrival)
    return first


@dataclass
class StepStart:
    step: str
    call_id: str
    generation: int
    at: float


def step_starts(events: Sequence[tuple[str, dict[str, Any]]]) -> list[StepStart]:
    return [
        StepStart(s["step"], _uuid(s["call_id"]), int(s["generation"]), _ts(s))
        for name, s in events
        if name == "StepStarted"
    ]


# -- engine overhead ------------------------------------------------------------------------------


def overhead(
    runs: Mapping[str, Sequence[tuple[str, dict[str, Any]]]],
    calls: Mapping[str, CallFacts],
    arrivals: Mapping[str, float],
    needs: Mapping[str, Mapping[str, Sequence[str]]],
    shape_of: Mapping[str, str],
) -> dict[str, Any]:
    """For each step with ``needs`` (``needs[shape][step]``; ``shape_of[run id]``): from the
    latest recorded outcome of the steps it needs (their calls' terminal event's timestamp)
    to its own call's first request at the target (ms), split at the successor's
    ``StepStarted`` (the workflow loop's part; then the timer's, the execution loop's and
    the wire's); and, as the target sees it, from the latest first request of the steps it
    needs to its own (their answers and the recording of their outcomes included). Returns
    the samples by shape and in all, and what could not be measured."""
    total: dict[str, list[float]] = defaultdict(list)
    loop: dict[str, list[float]] = defaultdict(list)
    dispatch: dict[str, list[float]] = defaultdict(list)
    at_target: dict[str, list[float]] = defaultdict(list)
    missing: Counter[str] = Counter()
    for run_id, events in runs.items():
        shape = shape_of.get(run_id)
        if shape is None:
            continue
        started = {s.step: s for s in step_starts(events)}
        for step, wanted in needs[shape].items():
            if not wanted:
                continue
            mine = started.get(step)
            outcomes = [
                calls[started[w].call_id].outcome_at if w in started else None for w in wanted
            ]
            arrival = arrivals.get(mine.call_id) if mine else None
            if mine is None or arrival is None or any(o is None for o in outcomes):
                missing["step not started, not delivered or a predecessor without outcome"] += 1
                continue
            ready = max(o for o in outcomes if o is not None)
            asked = [arrivals.get(started[w].call_id) for w in wanted]
            if all(a is not None for a in asked):
                for into in (at_target[shape], at_target["all"]):
                    into.append((arrival - max(a for a in asked if a is not None)) * 1000)
            for into in (total[shape], total["all"]):
                into.append((arrival - ready) * 1000)
            for into in (loop[shape], loop["all"]):
                into.append((mine.at - ready) * 1000)
            for into in (dispatch[shape], dispatch["all"]):
                into.append((arrival - mine.at) * 1000)
    return {"total": dict(total), "workflow_loop": dict(loop), "dispatch": dict(dispatch),
            "request_to_request": dict(at_target), "not_measured": dict(missing)}


# -- the chaos phase's workflow checks ------------------------------------------------------------

RUN_PROBLEMS = (
    "run_not_succeeded", "run_events_not_succeeded", "run_missing_from_store",
    "step_not_succeeded", "step_never_started", "step_started_twice", "step_key_with_two_calls",
    "step_call_of_another_key", "step_call_not_of_its_run", "step_call_not_succeeded",
    "step_never_delivered", "answer_call_differs", "answer_state_differs",
    "answer_status_code_differs", "answer_version_differs", "answer_counts_differ",
    "answer_key_differs",
)


def audit_runs(
    answers: Mapping[str, Mapping[str, Any]],
    runs: Mapping[str, Sequence[tuple[str, dict[str, Any]]]],
    calls: Mapping[str, CallFacts],
    records: Sequence[Sequence[Any]],
    steps: Sequence[str],
) -> dict[str, Any]:
    """Each run's API answer (``answers``: run id -> GET /v1/workflows/runs/{id}) against its
    events and its steps' calls, and the target's deliveries: every run succeeded, every
    step ran on exactly one call (its key ``wf:<run>:<step>`` maps to one call id, one
    ``StepStarted``), that call succeeded and was delivered, and the answer says what the
    events say (each step's call, state, status code; the run's version and counts)."""
    problems: dict[str, list[str]] = {name: [] for name in RUN_PROBLEMS}
    by_key: dict[str, set[str]] = defaultdict(set)
    for call_id, facts in calls.items():
        if facts.key:
            by_key[facts.key].add(call_id)
    delivered = set(first_arrivals(records))
    for run_id, answer in answers.items():
        events = runs.get(run_id)
        if events is None:
            problems["run_missing_from_store"].append(run_id)
            continue
        if answer.get("status") != "succeeded":
            problems["run_not_succeeded"].append(f"{run_id}: {answer.get('status')}")
        names = [name for name, _ in events]
        if next((n for n in reversed(names) if n in RUN_TERMINAL), None) != "Succeeded":
            problems["run_events_not_succeeded"].append(run_id)
        if answer.get("version") != len(events):
            problems["answer_version_differs"].append(f"{run_id}: {answer.get('version')} "
                                                      f"!= {len(events)}")
        succeeded = {s["step"]: s for name, s in events if name == "StepSucceeded"}
        starts: dict[str, list[StepStart]] = defaultdict(list)
        for start in step_starts(events):
            starts[start.step].append(start)
        counts = answer.get("counts") or {}
        if (counts.get("total"), counts.get("succeeded")) != (len(steps), len(succeeded)):
            problems["answer_counts_differ"].append(run_id)
        for step in steps:
            _audit_step(problems, run_id, step, answer, starts.get(step, []),
                        succeeded.get(step), calls, by_key, delivered)
    return {"runs": len(answers), "problems": {k: len(v) for k, v in problems.items()},
            "examples": {k: v[:5] for k, v in problems.items() if v}}


def _audit_step(
    problems: dict[str, list[str]],
    run_id: str,
    step: str,
    answer: Mapping[str, Any],
    starts: Sequence[StepStart],
    succeeded: Mapping[str, Any] | None,
    calls: Mapping[str, CallFacts],
    by_key: Mapping[str, set[str]],
    delivered: set[str],
) -> None:
    where = f"{run_id}:{step}"
    key = f"wf:{run_id}:{step}"
    shown = (answer.get("steps") or {}).get(step) or {}
    if succeeded is None:
        problems["step_not_succeeded"].append(where)
    if len(starts) != 1:
        problems["step_started_twice" if starts else "step_never_started"].append(where)
    made = by_key.get(key, set())
    if len(made) > 1:
        problems["step_key_with_two_calls"].append(f"{where}: {sorted(made)}")
    if not starts:
        return
    call_id = starts[0].call_id
    facts = calls.get(call_id, CallFacts())
    if facts.key != key:
        problems["step_call_of_another_key"].append(f"{where}: {facts.key}")
    if facts.origin != f"workflow:{run_id}":
        problems["step_call_not_of_its_run"].append(f"{where}: {facts.origin}")
    if facts.status != "succeeded" or len(facts.terminal) != 1:
        problems["step_call_not_succeeded"].append(f"{where}: {facts.terminal}")
    if call_id not in delivered:
        problems["step_never_delivered"].append(where)
    if str(shown.get("call_id")) != call_id:
        problems["answer_call_differs"].append(where)
    if shown.get("idempotency_key") != key:
        problems["answer_key_differs"].append(where)
    if (shown.get("state") == "succeeded") != (succeeded is not None):
        problems["answer_state_differs"].append(where)
    if succeeded is not None and shown.get("status_code") != succeeded.get("status_code"):
        problems["answer_status_code_differs"].append(where)


def audit_run_rows(url: str, answers: Mapping[str, Mapping[str, Any]],
                   runs: Mapping[str, Sequence[tuple[str, dict[str, Any]]]]) -> dict[str, int]:
    """The workflow runs read model against the runs: each run's row, with the answer's
    status, the events' version and the answer's step counts and states."""
    problems: Counter[str] = Counter()
    with psycopg.connect(url) as conn:
        rows = {str(r[0]): r[1:] for r in conn.execute(
            f"SELECT id, status, version, steps_total, steps_succeeded, step_states "
            f"FROM {RUNS_TABLE}").fetchall()}
    for run_id, answer in answers.items():
        row = rows.get(run_id)
        if row is None:
            problems["run_row_missing"] += 1
            continue
        status, version, total, succeeded, states = row
        counts = answer.get("counts") or {}
        problems["run_row_status_differs"] += status != answer.get("status")
        problems["run_row_version_differs"] += version != len(runs.get(run_id, ()))
        problems["run_row_counts_differ"] += (total, succeeded) != (
            counts.get("total"), counts.get("succeeded"))
        shown = {step: v.get("state") for step, v in (answer.get("steps") or {}).items()}
        problems["run_row_step_states_differ"] += states != shown
    problems["run_row_of_no_run"] = len(rows.keys() - answers.keys())
    return {name: n for name, n in problems.items() if n}


def resent(records: Sequence[Sequence[Any]]) -> dict[str, int]:
    """Deliveries beyond the first of one call's attempt (at least once: allowed, counted),
    and deliveries of attempts after the first (a step's call retried)."""
    per_key = Counter(str(r[1]) for r in records if r[1])
    return {
        "resent_deliveries": sum(n - 1 for n in per_key.values()),
        "attempts_resent": sum(1 for n in per_key.values() if n > 1),
        "deliveries_of_later_attempts": sum(
            n for k, n in per_key.items() if k.rpartition(":")[2] not in ("", "1")),
    }
