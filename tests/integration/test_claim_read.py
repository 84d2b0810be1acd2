"""A ``start`` claim carries, read in its own snapshot, each claimed call's events and whether
its host has a circuit: a start made at once needs no read of its own (issue 17)."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
import pytest

from application.clock import utcnow
from application.commands import SubmitServiceCall
from application.outbox import START, OutboxMessage, unread
from application.service_calls import Attempt
from domain.circuit import circuit_id_for
from domain.request import RequestSpec
from domain.service_call import ServiceCall, Status
from infrastructure.container import Container

TENANT = "t-claim-read"
URL = "http://127.0.0.1:9/never-sent"


def _submit_due_now(container: Container, count: int) -> list[ServiceCall]:
    now = utcnow()
    return [
        container.service_calls.submit(
            SubmitServiceCall(TENANT, f"read-{i}", RequestSpec("POST", URL, body="{}"), now)
        )[0]
        for i in range(count)
    ]


def _counted_event_reads(container: Container, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Reads of aggregates' events through the recorder, from here on (and counted)."""
    reads: list[Any] = []
    recorder: Any = container.service_calls.recorder
    real = recorder.select_events_of

    def counted(ids: Sequence[UUID], after: Sequence[int] | None = None) -> Any:
        reads.append(list(ids))
        return real(ids, after)

    monkeypatch.setattr(recorder, "select_events_of", counted)
    return reads


def test_a_claimed_start_carries_its_calls_events_as_recorded(container: Container) -> None:
    calls = _submit_due_now(container, 3)
    # its start message stays (consumed as stale when claimed); the claim reads the cancel
    container.service_calls.cancel(TENANT, calls[2].id, "changed before the claim")

    claimed = container.outbox.claim(START, 10)

    assert sorted(m.service_call_id for m in claimed) == sorted(c.id for c in calls)
    for message in claimed:
        assert message.read is not None
        assert message.read.circuit_id is None  # the host has no circuit
        versions = [e.originator_version for e in message.read.events]
        recorded = container.service_calls.get_call(TENANT, message.service_call_id)
        assert versions == list(range(1, recorded.version + 1))
        assert {e.originator_id for e in message.read.events} == {message.service_call_id}


def test_starting_claimed_messages_at_once_reads_nothing(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _submit_due_now(container, 5)
    claimed = container.outbox.claim(START, 10)
    reads = _counted_event_reads(container, monkeypatch)
    handed: list[Attempt] = []

    container.service_calls.start_due(claimed, hand_off=handed.extend)

    assert reads == []
    assert sorted(a.message.service_call_id for a in handed) == sorted(c.id for c in calls)
    for call in calls:
        assert container.service_calls.get_call(TENANT, call.id).status == Status.RUNNING


def test_a_host_with_a_circuit_has_it_read(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim says a circuit is registered for the host: the start reads it (the calls
    still come with the claim)."""
    (call,) = _submit_due_now(container, 1)
    circuit_id = circuit_id_for(TENANT, call.request.host)
    with psycopg.connect(container.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO duecall_circuits (tenant_id, host, circuit_id) VALUES (%s, %s, %s)",
            (TENANT, call.request.host, circuit_id),
        )
    claimed = container.outbox.claim(START, 10)
    assert [m.read.circuit_id if m.read else None for m in claimed] == [circuit_id]
    reads = _counted_event_reads(container, monkeypatch)

    container.service_calls.start_due(claimed, hand_off=lambda _: None)

    assert reads == [[circuit_id]]


def test_a_message_without_its_read_has_its_call_read_anew(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a claim read goes stale: once the call changed, only a message without it (as a
    timer holds one, or retries after a conflict) sees the change."""
    (call,) = _submit_due_now(container, 1)
    claimed: list[OutboxMessage] = list(container.outbox.claim(START, 10))
    container.service_calls.cancel(TENANT, call.id, "after the claim")
    reads = _counted_event_reads(container, monkeypatch)
    handed: list[Attempt] = []

    container.service_calls.start_due(list(map(unread, claimed)), hand_off=handed.extend)

    # the call, and its host's circuit if it had one, in one query
    assert reads == [[call.id, circuit_id_for(TENANT, call.request.host)]]
    assert handed == []  # cancelled: nothing to start
    assert container.service_calls.get_call(TENANT, call.id).status == Status.CANCELLED
