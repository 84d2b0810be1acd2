"""Outcomes are decided as they are recorded: the execution's terminal event and the call's
next step (Succeeded, a retry's Scheduled and timer message, Failed) in one transaction, with
no ``outcome`` message between them."""

from collections.abc import Sequence
from uuid import UUID

import pytest

from application.clock import utcnow
from application.commands import SubmitServiceCall
from application.outbox import EXECUTE, START
from application.service_calls import Attempt
from domain.circuit import circuit_id_for
from domain.outcome import AttemptResult
from domain.request import RequestSpec
from domain.retry_policy import RetryPolicy
from domain.service_call import ServiceCall, Status
from infrastructure.container import Container
from tests.support.db_queries import rows

TENANT = "t-decide"


def _begun(container: Container, retries: int = 0) -> tuple[ServiceCall, list[Attempt]]:
    """A call due now, started by the timer's use case and begun by the execution module."""
    call, _ = container.service_calls.submit(
        SubmitServiceCall(
            TENANT, "decided", RequestSpec("POST", "http://127.0.0.1:9/x"), utcnow(),
            retry_policy=RetryPolicy(max_attempts=1 + retries, initial_backoff_seconds=60),
        )
    )
    container.service_calls.start_due(container.outbox.claim(START, 10))
    attempts = container.service_calls.begin_attempts(container.outbox.claim(EXECUTE, 10))
    assert [a.message.service_call_id for a in attempts] == [call.id]
    return call, attempts


def _outbox(container: Container, call_id: UUID) -> list[tuple[str, int]]:
    sql = "SELECT kind, attempt FROM duecall_outbox WHERE service_call_id = %s ORDER BY id"
    return [(str(kind), int(n)) for kind, n in rows(container.database_url, sql, call_id)]


def _finish(container: Container, attempts: Sequence[Attempt], status_code: int) -> None:
    results = [(a, AttemptResult(3.0, status_code=status_code)) for a in attempts]
    container.service_calls.finish_attempts(results)


def _tenant_topics(container: Container) -> list[str]:
    sql = (
        "SELECT e.topic FROM duecall_events e JOIN duecall_event_hashes h USING "
        "(originator_id, originator_version) WHERE h.tenant_id = %s ORDER BY e.notification_id"
    )
    return [str(t) for (t,) in rows(container.database_url, sql, TENANT)]


def test_a_success_is_the_calls_outcome_at_once(container: Container) -> None:
    call, attempts = _begun(container)
    _finish(container, attempts, 200)

    assert container.service_calls.get_call(TENANT, call.id).status == Status.SUCCEEDED
    assert _outbox(container, call.id) == []  # no outcome message, nothing left to do
    assert _tenant_topics(container)[-3:] == [
        "duecall:Execution.Started", "duecall:Execution.Succeeded", "duecall:ServiceCall.Succeeded"
    ]


def test_a_failure_with_retries_left_schedules_the_next_attempt_with_its_timer_message(
    container: Container,
) -> None:
    call, attempts = _begun(container, retries=1)
    _finish(container, attempts, 500)

    again = container.service_calls.get_call(TENANT, call.id)
    assert (again.status, again.attempt) == (Status.SCHEDULED, 2)
    assert _outbox(container, call.id) == [("start", 2)]


def test_an_outcome_for_a_call_cancelled_meanwhile_is_recorded_and_changes_nothing(
    container: Container,
) -> None:
    call, attempts = _begun(container, retries=1)
    container.service_calls.cancel(TENANT, call.id, "changed my mind")
    _finish(container, attempts, 500)

    assert container.service_calls.get_call(TENANT, call.id).status == Status.CANCELLED
    assert "duecall:Execution.Failed" in _tenant_topics(container)
    assert _outbox(container, call.id) == []


def test_a_host_without_a_circuit_costs_no_read_of_its_own(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Circuits are read with the calls; only one the cache holds is read on its own (its
    newer events), and a failure registers one that later starts see."""
    reads: list[UUID] = []
    app = container.service_calls
    find = app._find_circuit
    monkeypatch.setattr(app, "_find_circuit", lambda cid: reads.append(cid) or find(cid))

    call, attempts = _begun(container)
    _finish(container, attempts, 200)
    assert reads == []  # start and outcome: the host has no circuit
    assert app.get_call(TENANT, call.id).status == Status.SUCCEEDED

    _, attempts = _begun(container)
    _finish(container, attempts, 503)  # counts against the host: its circuit is registered
    assert reads == []
    _begun(container)  # read with the call, then kept by the cache
    _begun(container)
    assert reads == [circuit_id_for(TENANT, "127.0.0.1")]  # only the cached one, on its own
