"""Events recorded in older shapes stay readable: the v1 fixtures decode and replay.

``ServiceCall.Scheduled`` is the one event with an older shape (v1, before ``scheduled_by``):
the pattern to follow when an event changes from now on (docs/events.md)."""

from collections import defaultdict
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from domain.circuit import Circuit
from domain.service_call import ServiceCall
from domain.tenant_settings import TenantSettings
from tests.support.event_fixtures import V1_CALL, V1_HELD, V1_LIMITED, stored_events

MAPPER = Application[UUID]().mapper


def _replayed() -> dict[UUID | str, Any]:
    by_aggregate: dict[UUID | str, list[Any]] = defaultdict(list)
    for stored in stored_events():
        by_aggregate[stored.originator_id].append(MAPPER.to_domain_event(stored))
    aggregates: dict[UUID | str, Any] = {}
    for originator_id, events in by_aggregate.items():
        aggregate = None
        for event in events:
            aggregate = event.mutate(aggregate)
        aggregates[originator_id] = aggregate
    return aggregates


def test_the_fixtures_hold_every_event_type_in_its_first_shape() -> None:
    rows = stored_events()
    topics = {row.topic for row in rows}
    scheduled = [row for row in rows if row.topic == "duecall:ServiceCall.Scheduled"]
    assert len(topics) == 20
    assert all(b"class_version" not in row.state for row in scheduled)
    assert all(b"scheduled_by" not in row.state for row in scheduled)


def test_v1_scheduled_events_are_upcast_with_who_scheduled_them() -> None:
    scheduled = [
        MAPPER.to_domain_event(row)
        for row in stored_events()
        if row.topic == "duecall:ServiceCall.Scheduled"
    ]
    assert all(isinstance(e, ServiceCall.Scheduled) for e in scheduled)
    by_reason = {(e.reason, e.scheduled_by) for e in scheduled}  # type: ignore[attr-defined]
    assert by_reason == {
        ("submitted", "duecall"), ("backoff", "duecall"), ("retry_after", "duecall"),
        ("circuit_open", "duecall"), ("manual", "client"), ("resumed", "client"),
    }


def test_upcast_events_are_stored_again_in_the_current_shape() -> None:
    row = next(r for r in stored_events() if r.topic == "duecall:ServiceCall.Scheduled")
    again = MAPPER.to_stored_event(MAPPER.to_domain_event(row))
    assert b'"class_version":2' in again.state
    assert b'"scheduled_by":"duecall"' in again.state
    assert MAPPER.to_domain_event(again) == MAPPER.to_domain_event(row)


def test_the_v1_fixtures_replay_into_the_aggregates_they_were_recorded_from() -> None:
    aggregates = _replayed()
    call, held, limited = aggregates[V1_CALL], aggregates[V1_HELD], aggregates[V1_LIMITED]
    assert isinstance(call, ServiceCall)
    assert (call.status, call.attempt, call.last_status_code, call.version) == (
        "succeeded", 3, 200, 12)
    assert (held.status, held.version) == ("cancelled", 7)
    assert (limited.status, limited.attempt, limited.last_status_code) == ("scheduled", 2, 429)
    circuit = next(a for a in aggregates.values() if isinstance(a, Circuit))
    assert (circuit.state, circuit.failures) == ("closed", 0)
    settings = next(a for a in aggregates.values() if isinstance(a, TenantSettings))
    assert settings.retry_policy.max_attempts == 2
    executions = [a for a in aggregates.values() if type(a).__name__ == "Execution"]
    assert sorted(e.outcome for e in executions) == ["failed", "failed", "failed", "succeeded"]

