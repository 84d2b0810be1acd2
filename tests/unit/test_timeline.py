"""`duecall replay` lines: what happened, who did it, and why a retry waited that long."""

import json
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from domain.ids import execution_id_for
from interfaces.timeline import timeline
from tests.support.event_fixtures import V1_CALL, V1_HELD, V1_LIMITED, stored_events


def _as_api_returns(ids: set[UUID]) -> list[dict[str, Any]]:
    """The fixture events of these aggregates, shaped like GET .../events items."""
    transcoder = Application[UUID]().mapper.transcoder
    events = []
    for row in stored_events():
        if row.originator_id not in ids:
            continue
        state = transcoder.decode(row.state)
        stamp = state.pop("timestamp")
        events.append({
            "type": row.topic.removeprefix("duecall:"), "originator_id": str(row.originator_id),
            "timestamp": stamp.isoformat(), "payload": json.loads(json.dumps(state, default=str)),
        })
    return sorted(events, key=lambda e: str(e["timestamp"]))


def _lines(*ids: UUID) -> list[tuple[str, str]]:
    return [(line.who, line.what) for line in timeline(_as_api_returns(set(ids)))]


def test_each_wait_says_why() -> None:
    call = _lines(V1_CALL)
    assert ("call", "attempt 2 scheduled: backoff 1: waits 2.0 s") in call
    assert any(what.startswith("attempt 3 scheduled (manual retry)") for _, what in call)
    limited = _lines(V1_LIMITED)
    assert ("call", "attempt 2 scheduled: Retry-After: waits 7.0 s") in limited
    held = [what for _, what in _lines(V1_HELD)]
    assert any(what.startswith("attempt 1 held: circuit open") for what in held)
    assert "cancelled: customer closed the account" in held
    assert "paused" in held
    assert "resumed" in held


def test_attempts_show_request_outcome_and_duration() -> None:
    executions = [execution_id_for(V1_CALL, n) for n in (1, 2, 3)]
    lines = _lines(V1_CALL, *executions)
    assert ("attempt 1", "→ POST https://hooks.example/orders") in lines
    assert ("attempt 1", "✗ http_error 500 in 12.5 ms: HTTP 500") in lines
    assert ("attempt 2", "✗ timeout in 10000.0 ms: read timed out") in lines
    assert ("attempt 3", "← 200 in 8.2 ms") in lines
    assert ("call", "succeeded on attempt 3 (200, 8.2 ms)") in lines
    assert ("call", "failed after attempt 2: attempts_exhausted (timeout)") in lines


def test_a_client_scheduling_is_named_and_offsets_count_from_the_first_event() -> None:
    events = [
        {"type": "ServiceCall.Scheduled", "originator_id": "c", "timestamp":
         "2025-01-01T00:00:00+00:00", "payload": {"attempt": 1, "due_at": "x",
                                                  "reason": "resumed", "scheduled_by": "client"}},
        {"type": "ServiceCall.Unknown", "originator_id": "c", "timestamp":
         "2025-01-01T00:00:01.500000+00:00", "payload": {"a": 1}},
    ]
    first, second = timeline(events)
    assert first.what == "attempt 1 due again x (resumed) (by client)"
    assert (second.offset, second.what) == (1.5, "ServiceCall.Unknown {'a': 1}")
