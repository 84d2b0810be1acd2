"""An attempt the outbound guard refused never reached its host: the circuit breaker counts it
neither as a failure nor as a success."""

from datetime import UTC, datetime
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application

from domain.circuit import Circuit, CircuitBoard, CircuitOptions, circuit_id_for
from domain.outcome import AttemptOutcome

NOW = datetime(2025, 1, 1, tzinfo=UTC)
OPTIONS = CircuitOptions(failure_threshold=3, open_seconds=30.0)


def _outcome(kind: str | None, attempt: int = 1, status_code: int | None = None) -> AttemptOutcome:
    return AttemptOutcome(
        execution_id="e", attempt=attempt, succeeded=False, duration_ms=1.0,
        error_kind=kind, status_code=status_code,
    )


def _record(app: Application[UUID], call_id: UUID, outcome: AttemptOutcome) -> Circuit | None:
    board = CircuitBoard(lambda circuit_id: _find(app, circuit_id), OPTIONS)
    board.record("t", "h.example", call_id, outcome, NOW)
    app.save(*board.touched)
    touched = list(board.touched)
    return touched[0] if touched else None


def test_a_rejected_attempt_registers_no_circuit() -> None:
    app: Application[UUID] = Application()
    assert _record(app, uuid4(), _outcome("rejected")) is None


def test_a_rejected_attempt_neither_counts_nor_resets_the_failures() -> None:
    app: Application[UUID] = Application()
    call = uuid4()
    _record(app, call, _outcome("timeout", 1))
    _record(app, call, _outcome("network", 2))
    circuit = _record(app, call, _outcome("rejected", 3))
    assert circuit is not None
    assert (circuit.state, circuit.failures) == ("closed", 2)
    assert _names(app) == ["Registered", "FailureCounted", "FailureCounted"]  # none for it
    circuit = _record(app, call, _outcome("timeout", 4))
    assert circuit is not None
    assert circuit.state == "open"  # the third counted failure, as if it had not happened


def test_a_rejected_probe_closes_the_circuit_so_held_calls_are_not_held_for_ever() -> None:
    app: Application[UUID] = Application()
    circuit = Circuit.register("t", "h.example")
    for _ in range(3):
        circuit.record("x:1", True, 3, 0.0, NOW)
    probe_call = uuid4()
    circuit.start_probe(f"{probe_call}:1", NOW)
    app.save(circuit)
    closed = _record(app, probe_call, _outcome("rejected", 1))
    assert closed is not None
    assert closed.state == "closed"


def _find(app: Application[UUID], circuit_id: UUID) -> Circuit | None:
    try:
        circuit: Circuit = app.repository.get(circuit_id)
    except AggregateNotFoundError:
        return None
    return circuit


def _names(app: Application[UUID]) -> list[str]:
    events = app.repository.event_store.get(circuit_id_for("t", "h.example"))
    return [type(e).__name__ for e in events]
