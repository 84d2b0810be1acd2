"""The chaos run's invariant audit (scripts/chaos_audit.py), used directly on a small workload
driven through the application: on a clean run every invariant holds; a run broken on purpose
(a call left in the outbox, a second terminal event, an altered event) is named by the
audit."""

import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psycopg

from application.service_calls import Attempt
from domain.outcome import AttemptResult
from harness.processes import REPO_ROOT
from infrastructure.container import Container
from tests.support.read_models import catch_up, reset_read_models
from tests.support.workload import run_until_idle, submit_calls

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import chaos_audit

ZERO_LOST = "zero lost (every accepted call terminal)"
ZERO_DOUBLED = "zero doubled (terminal events, attempts, executions)"
COMPLETE = "every attempt complete, outbox empty"
HASH_CHAINS = "every event's hash chain verifies"


@dataclass
class RecordingTarget:
    """Plays harness/recording_target.py: answers by the behaviour in the URL's last segment
    (``ok``, ``flaky`` 500 then 200, ``missing`` 404) and records each delivery as that target
    does: (arrival, Idempotency-Key, Duecall-Id, path, answer)."""

    records: list[list[Any]] = field(default_factory=list)

    def __call__(self, attempt: Attempt, rng: random.Random) -> AttemptResult:
        path = urlsplit(attempt.request.url).path
        behaviour = path.rpartition("/")[2].partition("-")[0]
        status = {"missing": 404, "flaky": 500 if attempt.message.attempt == 1 else 200}.get(
            behaviour, 200)
        self.records.append([time.time(), attempt.idempotency_key,
                             str(attempt.message.service_call_id), path, str(status)])
        return AttemptResult(duration_ms=rng.uniform(1, 50), status_code=status)


@dataclass
class Run:
    accepted: dict[str, str]  # token → call id, as the chaos run's submitter keeps them
    target: RecordingTarget


def run_workload(container: Container, calls: int = 12) -> Run:
    """Submit ``calls`` calls, each with its own token, and run them all to their end."""
    tokens = [f"{('ok', 'flaky', 'missing')[i % 3]}-{i}" for i in range(calls)]
    ids = submit_calls(container, calls, behaviours=tokens)
    target = RecordingTarget()
    run_until_idle(container, answer=target)
    catch_up(container)
    return Run(dict(zip(tokens, map(str, ids), strict=True)), target)


def audit(container: Container, run: Run) -> tuple[Any, dict[str, dict[str, Any]]]:
    """What the chaos run does after its load: audit the store, the deliveries and the read
    models, rebuild the read models from position 0 and compare."""
    url = container.database_url
    store = chaos_audit.audit_store(url, run.accepted)
    deliveries = chaos_audit.audit_deliveries(run.target.records, run.accepted, store)
    models = chaos_audit.audit_read_models(url, store)
    live = chaos_audit.checksums(url)
    reset_read_models(container)
    catch_up(container)
    rebuilt = chaos_audit.checksums(url)
    models["rebuilt_tables_differing"] = sorted(t for t in live if live[t] != rebuilt.get(t))
    return store, chaos_audit.invariants(store, deliveries, models)


def broken(invariants: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {name: item["count"] for name, item in invariants.items() if not item["ok"]}


def test_a_clean_workload_keeps_every_invariant(rm_container: Container) -> None:
    run = run_workload(rm_container)

    store, invariants = audit(rm_container, run)

    assert broken(invariants) == {}
    assert store.examples == {}
    assert store.figures["calls"] == 12
    assert store.figures["attempts"] == 16  # the four flaky calls were tried twice
    assert sorted(store.status.values()) == ["failed"] * 4 + ["succeeded"] * 8


def test_a_call_left_in_the_outbox_is_lost_and_dangling(rm_container: Container) -> None:
    run = run_workload(rm_container)
    (never_run,) = submit_calls(rm_container, 1, behaviours=["ok-late"], delay_seconds=3600)
    run.accepted["ok-late"] = str(never_run)
    catch_up(rm_container)

    store, invariants = audit(rm_container, run)

    assert broken(invariants) == {ZERO_LOST: 1, COMPLETE: 1}
    assert store.problems["not_terminal"] == [str(never_run)]
    assert store.figures["outbox_left"] == 1


def test_a_second_terminal_event_is_named(rm_container: Container) -> None:
    run = run_workload(rm_container)
    call_id = run.accepted["ok-0"]
    with psycopg.connect(rm_container.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO duecall_events (originator_id, originator_version, topic, state) "
            "SELECT originator_id, originator_version + 1, topic, state FROM duecall_events "
            "WHERE originator_id = %s AND topic = 'duecall:ServiceCall.Succeeded'",
            (call_id,))

    store, invariants = audit(rm_container, run)

    # a Succeeded event both ends the call and is its attempt's outcome: two counts
    assert invariants[ZERO_DOUBLED] == {"ok": False, "count": 2}
    assert store.examples["double_terminal"] == [call_id]
    assert store.examples["attempt_two_outcomes"] == [f"{call_id}:1"]


def test_an_altered_event_breaks_its_hash_chain(rm_container: Container) -> None:
    run = run_workload(rm_container)
    call_id = run.accepted["ok-0"]
    with psycopg.connect(rm_container.database_url, autocommit=True) as conn:
        conn.execute(  # the same JSON, one byte longer: only the chain can tell
            "UPDATE duecall_events SET state = state || ' '::bytea "
            "WHERE originator_id = %s AND originator_version = 1", (call_id,))

    store, invariants = audit(rm_container, run)

    assert broken(invariants) == {HASH_CHAINS: 1}
    assert store.examples["hash_chain_broken"] == [f"{call_id} v1: hash mismatch: event altered"]
