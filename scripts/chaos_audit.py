"""The chaos run's audit (issue 8): what the event store, the outbox, the target's records and
the read models say after a run, and every way they break an invariant.

Importable on its own (tests use it on a workload they drive through the application):

    store = audit_store(database_url, accepted)      # accepted: workload token → call id
    deliveries = audit_deliveries(records, accepted, store)
    models = audit_read_models(database_url, store)
    invariants(store, deliveries, models)            # name → {"ok": ..., "count": ...}

A call's token is the last segment of its URL's path; each call of a run has its own.
``scripts/chaos.py`` runs the stack, the load and the faults, then calls these. The event
store's hash chains are checked by duecall's own verifier (infrastructure/chain_verifier.py);
``checksums`` digests the read models' tables, to compare them with a rebuild.

A little over 300 lines on purpose: every invariant and the figures it is counted from are
read together, so that a reader can check none is missing.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import _harness  # noqa: F401  (puts the repository root on sys.path, for projections.*)
import orjson
import psycopg

from infrastructure.chain_verifier import verify
from projections.executions import TABLE as EXECUTIONS_TABLE
from projections.read_models import PROJECTIONS
from projections.service_calls import TABLE as CALLS_TABLE

TERMINAL = {"Succeeded": "succeeded", "Failed": "failed", "Cancelled": "cancelled"}
# the status a live call's last event leaves (the others: the event's name, lower-cased)
LIVE = {"Submitted": "scheduled", "Started": "running"}
CALL_OUTCOMES = ("AttemptFailed", "Succeeded")  # one per attempt; Failed ends the call

# -- reading the event store ----------------------------------------------------------------------


def _ts(state: dict[str, Any]) -> float:
    stamp = state["timestamp"]
    text = stamp["_data_"] if isinstance(stamp, dict) else str(stamp)
    return datetime.fromisoformat(text).timestamp()


def _uuid(value: Any) -> str:
    if isinstance(value, dict):
        return str(uuid.UUID(value["_data_"]))
    return str(uuid.UUID(str(value)))


@dataclass
class CallHistory:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (event, state)


def read_events(url: str) -> tuple[dict[str, CallHistory], dict[str, CallHistory]]:
    """Every ServiceCall and Execution aggregate's events, in recorded order."""
    calls: dict[str, CallHistory] = defaultdict(CallHistory)
    executions: dict[str, CallHistory] = defaultdict(CallHistory)
    with psycopg.connect(url) as conn, conn.cursor(name="events") as cursor:
        cursor.itersize = 5000
        cursor.execute(
            "SELECT originator_id, topic, state FROM duecall_events "
            "WHERE topic LIKE 'duecall:ServiceCall.%%' OR topic LIKE 'duecall:Execution.%%' "
            "ORDER BY notification_id"
        )
        for originator_id, topic, state in cursor:
            aggregate, _, event = topic.removeprefix("duecall:").partition(".")
            into = calls if aggregate == "ServiceCall" else executions
            into[str(originator_id)].events.append((event, orjson.loads(bytes(state))))
    return dict(calls), dict(executions)


@dataclass
class Attempt:
    call_id: str
    attempt: int
    started: float
    finished: float | None
    execution_id: str


STORE_PROBLEMS = (
    "not_terminal", "double_terminal", "events_after_terminal", "attempt_started_twice",
    "attempt_two_outcomes", "attempt_without_outcome", "outcome_without_start",
    "execution_not_started_once", "execution_two_outcomes", "execution_unfinished",
    "two_executions_for_one_attempt", "attempt_without_execution",
    "execution_of_another_attempt", "execution_without_attempt", "accepted_but_missing",
    "recorded_but_never_accepted", "token_with_two_calls", "token_answered_with_another_call",
    "hash_chain_broken",
)


@dataclass
class StoreAudit:
    """What the event store says, and every way it breaks an invariant (``problems``)."""

    problems: dict[str, list[str]] = field(
        default_factory=lambda: {name: [] for name in STORE_PROBLEMS})
    status: dict[str, str] = field(default_factory=dict)  # call id → succeeded, failed, ...
    token_of: dict[str, str] = field(default_factory=dict)  # call id → workload token
    versions: dict[str, int] = field(default_factory=dict)  # call id → events
    completions: list[float] = field(default_factory=list)  # terminal event times, sorted
    attempts: list[Attempt] = field(default_factory=list)
    execution_keys: dict[str, tuple[str, int]] = field(default_factory=dict)  # → (call, n)
    execution_outcome: dict[str, str] = field(default_factory=dict)
    figures: dict[str, int] = field(default_factory=dict)

    @property
    def examples(self) -> dict[str, list[str]]:
        return {name: items[:5] for name, items in self.problems.items() if items}

    def call(self, call_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        self.versions[call_id] = len(events)
        self.token_of[call_id] = str(events[0][1].get("url", "")).rpartition("/")[2]
        terminals = [(e, s) for e, s in events if e in TERMINAL]
        if len(terminals) > 1:
            self.problems["double_terminal"].append(call_id)
        if terminals:
            self.status[call_id] = TERMINAL[terminals[0][0]]
            self.completions.append(_ts(terminals[0][1]))
            if events[-1][0] not in TERMINAL:
                self.problems["events_after_terminal"].append(call_id)
        else:
            self.status[call_id] = LIVE.get(events[-1][0], events[-1][0].lower())
            self.problems["not_terminal"].append(call_id)
        started: dict[int, list[dict[str, Any]]] = defaultdict(list)
        outcomes: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for event, state in events:
            if event == "Started":
                started[int(state["attempt"])].append(state)
            elif event in CALL_OUTCOMES:
                outcomes[int(state["attempt"])].append(state)
        for number, starts in started.items():
            ends = outcomes.get(number, [])
            where = f"{call_id}:{number}"
            for name, broken in (("attempt_started_twice", len(starts) > 1),
                                 ("attempt_two_outcomes", len(ends) > 1),
                                 ("attempt_without_outcome", not ends)):
                if broken:
                    self.problems[name].append(where)
            self.attempts.append(Attempt(call_id, number, _ts(starts[0]),
                                         _ts(ends[0]) if ends else None,
                                         _uuid(starts[0]["execution_id"])))
        for number in outcomes.keys() - started.keys():
            self.problems["outcome_without_start"].append(f"{call_id}:{number}")

    def execution(self, execution_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        names = [e for e, _ in events]
        if names.count("Started") != 1 or names[0] != "Started":
            self.problems["execution_not_started_once"].append(execution_id)
        finished = [e for e in names if e in ("Succeeded", "Failed")]
        if len(finished) > 1:
            self.problems["execution_two_outcomes"].append(execution_id)
        if not finished:
            self.problems["execution_unfinished"].append(execution_id)
        first = events[0][1]
        self.execution_keys[execution_id] = (_uuid(first["service_call_id"]),
                                             int(first["attempt"]))
        self.execution_outcome[execution_id] = finished[0].lower() if finished else "running"

    def cross_check(self, accepted: dict[str, str]) -> None:
        """Attempts ↔ executions, accepted submits ↔ recorded calls."""
        per_attempt = Counter(self.execution_keys.values())
        self.problems["two_executions_for_one_attempt"] = [
            f"{call}:{n}" for (call, n), count in per_attempt.items() if count > 1]
        for attempt in self.attempts:
            if attempt.execution_id not in self.execution_keys:
                self.problems["attempt_without_execution"].append(
                    f"{attempt.call_id}:{attempt.attempt}")
            elif self.execution_keys[attempt.execution_id] != (attempt.call_id,
                                                                attempt.attempt):
                self.problems["execution_of_another_attempt"].append(attempt.execution_id)
        started = {(a.call_id, a.attempt) for a in self.attempts}
        self.problems["execution_without_attempt"] = [
            e for e, key in self.execution_keys.items() if key not in started]
        recorded = set(self.status)
        accepted_ids = set(accepted.values())
        per_token = Counter(self.token_of.values())
        self.problems["accepted_but_missing"] = sorted(accepted_ids - recorded)
        self.problems["recorded_but_never_accepted"] = sorted(recorded - accepted_ids)
        self.problems["token_with_two_calls"] = sorted(t for t, n in per_token.items() if n > 1)
        self.problems["token_answered_with_another_call"] = sorted(
            t for t, call in accepted.items() if call in self.token_of
            and self.token_of[call] != t)


def audit_store(url: str, accepted: dict[str, str]) -> StoreAudit:
    calls, executions = read_events(url)
    audit = StoreAudit()
    for call_id, history in calls.items():
        audit.call(call_id, history.events)
    audit.completions.sort()
    for execution_id, history in executions.items():
        audit.execution(execution_id, history.events)
    audit.cross_check(accepted)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM duecall_outbox").fetchone()
        chains = verify(conn)  # duecall's own verifier (`duecall audit verify`)
    audit.problems["hash_chain_broken"] = [f"{b.originator_id} v{b.version}: {b.problem}"
                                           for b in chains.breaks]
    audit.figures = {name: len(items) for name, items in audit.problems.items()}
    audit.figures.update(outbox_left=int(row[0]) if row else 0, calls=len(calls),
                         executions=len(executions), attempts=len(audit.attempts))
    return audit


# -- the deliveries the target recorded --------------------------------------------------------


def audit_deliveries(records: list[list[Any]], accepted: dict[str, str],
                     store: StoreAudit) -> dict[str, Any]:
    """Every delivery names its call and a recorded attempt; duplicates carry the same key."""
    problems: dict[str, list[str]] = defaultdict(list)
    per_key: Counter[str] = Counter()
    started = {(a.call_id, a.attempt) for a in store.attempts}
    for _arrival, key, duecall_id, path, _action in records:
        token = str(path).rstrip("/").rpartition("/")[2]
        call_id = accepted.get(token)
        if not key:
            problems["delivery_without_key"].append(str(path))
            continue
        per_key[key] += 1
        key_call, _, attempt = str(key).rpartition(":")
        if call_id is None or key_call != call_id:
            problems["key_of_another_call"].append(str(key))
        elif duecall_id != call_id:
            problems["duecall_id_of_another_call"].append(str(key))
        elif not attempt.isdigit() or (key_call, int(attempt)) not in started:
            problems["key_of_no_recorded_attempt"].append(str(key))
    delivered = set(per_key)
    for execution_id, outcome in store.execution_outcome.items():
        call_id, number = store.execution_keys[execution_id]
        if outcome == "succeeded" and f"{call_id}:{number}" not in delivered:
            problems["succeeded_without_delivery"].append(execution_id)
    duplicates = {k: n for k, n in per_key.items() if n > 1}
    return {
        "requests": len(records),
        "distinct_keys": len(per_key),
        "duplicate_deliveries": sum(n - 1 for n in duplicates.values()),
        "keys_delivered_more_than_once": len(duplicates),
        "most_deliveries_of_one_key": max(per_key.values(), default=0),
        "by_action": dict(Counter(str(r[4]) for r in records)),
        "problems": {name: len(items) for name, items in problems.items()},
        "examples": {name: items[:5] for name, items in problems.items() if items},
    }


# -- the read models ----------------------------------------------------------------------------


def checksums(url: str) -> dict[str, str]:
    """Each read-model table's md5 over its rows in text order (equal tables, equal digests)."""
    tables = [table for projection in PROJECTIONS for table in projection.tables]
    found = {}
    with psycopg.connect(url) as conn:
        for table in tables:
            row = conn.execute(f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY "
                               f"t::text), '')) FROM {table} t").fetchone()
            found[table] = str(row[0]) if row else ""
    return found


def audit_read_models(url: str, store: StoreAudit) -> dict[str, Any]:
    """Each call's status and version and each execution's outcome, as the store has them."""
    problems: dict[str, list[str]] = defaultdict(list)
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT id::text, status, version FROM {CALLS_TABLE}").fetchall()
        seen = set()
        for call_id, status, version in rows:
            seen.add(call_id)
            if store.status.get(call_id) != status:
                problems["call_status_differs"].append(call_id)
            if store.versions.get(call_id) != version:
                problems["call_version_differs"].append(call_id)
        problems["call_missing"] = sorted(store.status.keys() - seen)
        rows = conn.execute(f"SELECT id::text, service_call_id::text, attempt, outcome "
                            f"FROM {EXECUTIONS_TABLE}").fetchall()
        seen = set()
        for execution_id, call_id, attempt, outcome in rows:
            seen.add(execution_id)
            if store.execution_keys.get(execution_id) != (call_id, attempt):
                problems["execution_attempt_differs"].append(execution_id)
            if store.execution_outcome.get(execution_id) != outcome:
                problems["execution_outcome_differs"].append(execution_id)
        problems["execution_missing"] = sorted(store.execution_outcome.keys() - seen)
    return {"problems": {name: len(items) for name, items in problems.items()},
            "examples": {name: items[:5] for name, items in problems.items() if items}}



# -- the invariants -------------------------------------------------------------------------------


def invariants(store: StoreAudit, deliveries: dict[str, Any], models: dict[str, Any], *,
               refused: int = 0, slow_stops: int = 0,
               not_problem_json: int = 0) -> dict[str, dict[str, Any]]:
    """Each invariant: whether it holds, and how many times it is broken. ``refused``: accepted
    submits never answered with a call; ``slow_stops``: graceful stops that outlasted the
    shutdown timeout; ``not_problem_json``: 5xx answers that were not problem+json."""
    f = store.figures
    lost = f["accepted_but_missing"] + f["not_terminal"] + refused
    doubled = (f["double_terminal"] + f["events_after_terminal"] + f["attempt_started_twice"]
               + f["attempt_two_outcomes"] + f["two_executions_for_one_attempt"]
               + f["execution_two_outcomes"] + f["execution_not_started_once"])
    half = (f["recorded_but_never_accepted"] + f["token_with_two_calls"]
            + f["token_answered_with_another_call"])
    dangling = (f["attempt_without_outcome"] + f["outcome_without_start"]
                + f["attempt_without_execution"] + f["execution_without_attempt"]
                + f["execution_of_another_attempt"] + f["execution_unfinished"]
                + f["outbox_left"])
    keys = sum(deliveries["problems"].values())
    read_models = (sum(models["problems"].values())
                   + len(models.get("rebuilt_tables_differing", [])))
    counts = {
        "zero lost (every accepted call terminal)": lost,
        "zero doubled (terminal events, attempts, executions)": doubled,
        "nothing half-written (one call per submit, retries included)": half,
        "every attempt complete, outbox empty": dangling,
        "deliveries carry their attempt's Idempotency-Key": keys,
        "read models agree with the event store (and a rebuild)": read_models,
        "every event's hash chain verifies": f["hash_chain_broken"],
        "graceful stops within the shutdown timeout (+3 s)": slow_stops,
        "API errors are problem+json (no stack traces)": not_problem_json,
    }
    return {name: {"ok": count == 0, "count": count} for name, count in counts.items()}
