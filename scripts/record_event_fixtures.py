#!/usr/bin/env python
"""Record every event type, as the application's mapper stores it, into a fixture file.

    .venv/bin/python scripts/record_event_fixtures.py tests/fixtures/events_vN.json

The aggregates are driven through their public commands (the same ones the workers and the
API call) and each new event is turned into its stored form by the ``duecall`` application's
mapper, the very bytes the Postgres recorder inserts into ``duecall_events.state``. A fixture
is recorded once, committed, and never regenerated (the script will not overwrite one): later
code must keep reading it. ``events_v1.json`` holds ``ServiceCall.Scheduled`` as v1 (before
``scheduled_by``), the one upcast example; the other events are in their current shape.
"""

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from domain.circuit import Circuit
from domain.execution import Execution
from domain.ids import execution_id_for
from domain.outcome import AttemptResult, ErrorKind
from domain.request import RequestSpec
from domain.retry_policy import Jitter, RetryPolicy
from domain.service_call import ServiceCall
from domain.tenant_settings import TenantSettings

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=2, initial_backoff_seconds=2.0, jitter=Jitter.NONE)
REQUEST = RequestSpec(
    "POST", "https://hooks.example/orders", {"Authorization": "Bearer s3cret"}, '{"id":1}', 10
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _attempt(call: ServiceCall, now: float, result: AttemptResult) -> list[Any]:
    """Start the due attempt, make it (an Execution), and feed its outcome back."""
    execution_id = call.start(call.attempt, at(now))
    assert execution_id is not None
    execution = Execution.begin(
        id=execution_id, tenant_id=call.tenant_id, service_call_id=call.id,
        attempt=call.attempt, request=call.request, now=at(now),
    )
    outcome = execution.finish(result, at(now + result.duration_ms / 1000))
    assert outcome is not None
    call.record_outcome(outcome, at(now + 1), random_fraction=0.5)
    return list(execution.collect_events())


def scenario() -> list[Any]:
    """Submit → 500 → timeout → failed → manual retry → 200; pause/resume/hold/cancel;
    a 429 with Retry-After; a circuit's whole cycle; a tenant's default policy."""
    events: list[Any] = []
    call = ServiceCall.submit(id=UUID("01943b2a-0000-7000-8000-000000000001"), tenant_id="t1",
                              name="orders", request=REQUEST, due_at=at(0), tags=["fixture"],
                              correlation_id="c-1", idempotency_key="k-1", retry_policy=POLICY)
    events += _attempt(call, 0, AttemptResult(12.5, 500, {"Set-Cookie": "sid=1"}, "oops"))
    events += _attempt(call, 4, AttemptResult(10_000.0, error_kind=ErrorKind.TIMEOUT,
                                              message="read timed out"))
    call.retry(at(30))
    events += _attempt(call, 31, AttemptResult(8.25, 200, {"Content-Type": "text/plain"}, "ok"))
    events += call.collect_events()

    held = ServiceCall.submit(id=UUID("01943b2a-0000-7000-8000-000000000002"), tenant_id="t1",
                              name="reminder", request=REQUEST, due_at=at(60))
    held.pause(at(1))
    held.resume(at(2))
    held.hold(held.attempt, at(90))
    held.cancel("customer closed the account", at(3))
    events += held.collect_events()

    limited = ServiceCall.submit(id=UUID("01943b2a-0000-7000-8000-000000000003"), tenant_id="t2",
                                 name="partner", request=REQUEST, due_at=at(0))
    events += _attempt(limited, 0, AttemptResult(3.0, 429, {"Retry-After": "7"}))
    events += limited.collect_events()

    circuit = Circuit.register("t1", "hooks.example")
    probe = f"{call.id}:1"
    circuit.record(probe, failed=True, threshold=2, open_seconds=30, now=at(1))
    circuit.record(probe, failed=True, threshold=2, open_seconds=30, now=at(5))
    circuit.start_probe(probe, at(40))
    circuit.record(probe, failed=False, threshold=2, open_seconds=30, now=at(41))
    events += circuit.collect_events()

    settings = TenantSettings.register("t1")
    settings.set_retry_policy(POLICY)
    events += settings.collect_events()
    assert execution_id_for(call.id, 3) in {e.originator_id for e in events}
    return events


def record(path: Path) -> None:
    if path.exists():
        raise SystemExit(f"{path} exists: a recorded fixture is never rewritten")
    mapper = Application[UUID]().mapper
    rows = []
    for event in scenario():
        stored = mapper.to_stored_event(event)
        rows.append({
            "originator_id": str(stored.originator_id),
            "originator_version": stored.originator_version,
            "topic": stored.topic,
            "state": stored.state.decode("utf-8"),
        })
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"events": rows}, indent=1) + "\n")
    print(f"recorded {len(rows)} events to {path}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    record(Path(sys.argv[1]))
