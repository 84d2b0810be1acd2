"""A user's command that meets a worker's write on the same aggregate is applied again to the
fresh state (never a 500): the conflict is made deterministic by recording another writer's
change between the command's get and its save, in the real database."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from application.circuit_admin import reset_circuit
from application.clock import utcnow
from application.commands import SubmitServiceCall
from application.conflicts import COMMAND_ATTEMPTS, ConcurrentUpdateError
from application.outbox import record
from application.service_calls import ServiceCalls
from domain.circuit import Circuit
from domain.errors import InvalidTransitionError
from domain.request import RequestSpec
from domain.service_call import ServiceCall, Status
from infrastructure.container import Container

TENANT = "t-conflict"
HOST = "flaky.example"


def interfere(
    monkeypatch: pytest.MonkeyPatch,
    app: ServiceCalls,
    change: Callable[[Any], object],
    times: int,
) -> list[int]:
    """For the next ``times`` gets of the repository, another writer records ``change`` on
    the aggregate right after it was read (so the reader's save conflicts). Returns a list
    that counts the gets."""
    get = app.repository.get
    gets: list[int] = []

    def get_then_change(aggregate_id: UUID, *args: Any, **kwargs: Any) -> Any:
        stale = get(aggregate_id, *args, **kwargs)
        gets.append(1)
        if len(gets) <= times:
            other: Any = get(aggregate_id)
            change(other)
            record(app, [other])
        return stale

    monkeypatch.setattr(app.repository, "get", get_then_change)
    return gets


def _scheduled_call(container: Container) -> ServiceCall:
    due = utcnow() + timedelta(hours=1)
    command = SubmitServiceCall(TENANT, "later", RequestSpec("GET", f"http://{HOST}/"), due)
    call, _ = container.service_calls.submit(command)
    return call


def _held(call: ServiceCall) -> None:
    """What a timer does when the host's circuit is open: the call stays scheduled."""
    assert call.hold(call.attempt, call.due_at + timedelta(seconds=1))


def _events(container: Container, call_id: UUID) -> list[str]:
    return [
        type(e).__qualname__
        for e in container.service_calls.repository.event_store.get(call_id)
    ]


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (lambda app, call: app.pause(TENANT, call.id), Status.PAUSED),
        (lambda app, call: app.cancel(TENANT, call.id, "no longer needed"), Status.CANCELLED),
    ],
    ids=["pause", "cancel"],
)
def test_a_lifecycle_command_that_conflicts_with_a_worker_is_applied_to_fresh_state(
    container: Container,
    monkeypatch: pytest.MonkeyPatch,
    command: Callable[[ServiceCalls, ServiceCall], ServiceCall],
    status: Status,
) -> None:
    call = _scheduled_call(container)
    gets = interfere(monkeypatch, container.service_calls, _held, times=1)

    done = command(container.service_calls, call)

    assert done.status == status
    assert len(gets) == 2  # the stale read, then the fresh one
    events = _events(container, call.id)
    assert events[-2] == "ServiceCall.Scheduled"  # the worker's change is kept
    assert events[-1] in ("ServiceCall.Paused", "ServiceCall.Cancelled")


def test_resume_racing_another_resume_answers_with_the_resumed_call(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = _scheduled_call(container)
    container.service_calls.pause(TENANT, call.id)
    interfere(monkeypatch, container.service_calls, lambda c: c.resume(utcnow()), times=1)

    resumed = container.service_calls.resume(TENANT, call.id)

    assert resumed.status == Status.SCHEDULED
    assert _events(container, call.id).count("ServiceCall.Resumed") == 1


def test_a_command_the_fresh_state_no_longer_allows_is_a_conflict_not_an_error(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = _scheduled_call(container)
    cancel = lambda c: c.cancel("by another request", utcnow())  # noqa: E731
    interfere(monkeypatch, container.service_calls, cancel, times=1)

    with pytest.raises(InvalidTransitionError):  # → 409 with status_of_call
        container.service_calls.pause(TENANT, call.id)


def test_a_command_that_keeps_conflicting_gives_up_with_a_concurrent_update_error(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = _scheduled_call(container)
    gets = interfere(monkeypatch, container.service_calls, _held, times=1_000)

    with pytest.raises(ConcurrentUpdateError):  # → 409, never a 500
        container.service_calls.pause(TENANT, call.id)
    assert len(gets) == COMMAND_ATTEMPTS
    assert container.service_calls.get_call(TENANT, call.id).status == Status.SCHEDULED


def _failing_circuit(container: Container) -> Circuit:
    circuit = Circuit.register(TENANT, HOST)
    _count_failure(circuit)
    record(container.service_calls, [circuit])
    return circuit


def _count_failure(circuit: Circuit) -> None:
    """What recording a failed attempt for the host does to its circuit."""
    circuit.record(f"{circuit.failures}:1", True, 1_000, 30.0, utcnow())


def test_a_circuit_reset_while_failures_are_recorded_closes_the_circuit(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    _failing_circuit(container)
    gets = interfere(monkeypatch, container.service_calls, _count_failure, times=2)

    circuit = reset_circuit(container.service_calls, TENANT, HOST)

    assert (circuit.state, circuit.failures) == ("closed", 0)
    assert len(gets) == 3
    stored: Circuit = container.service_calls.repository.get(circuit.id)
    assert (stored.state, stored.failures, stored.version) == ("closed", 0, circuit.version)


def test_a_circuit_reset_that_keeps_conflicting_gives_up_with_a_concurrent_update_error(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    _failing_circuit(container)
    interfere(monkeypatch, container.service_calls, _count_failure, times=1_000)

    with pytest.raises(ConcurrentUpdateError):
        reset_circuit(container.service_calls, TENANT, HOST)
