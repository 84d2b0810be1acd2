"""The outbox is written in the same transaction as the events that caused it.

Real Postgres, real eventsourcing recorder: a message appears (or disappears) if and only if its
events are recorded.
"""

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from application.clock import utcnow
from application.commands import SubmitServiceCall
from application.outbox import EXECUTE, START, OutboxChanges, OutboxMessage, TransactionEffects
from domain.ids import new_service_call_id
from domain.request import RequestSpec
from domain.service_call import ServiceCall, Status
from infrastructure.container import Container
from tests.support.db_queries import event_count, outbox_rows, rows

pytestmark = pytest.mark.smoke

TENANT = "t-atomic"
URL = "http://127.0.0.1:9/never-called"  # nothing here is ever sent


def _event_topics(url: str, originator_id: UUID) -> list[tuple[int, str]]:
    found = rows(
        url,
        "SELECT originator_version, topic FROM duecall_events "
        "WHERE originator_id = %s ORDER BY originator_version",
        originator_id,
    )
    return [(int(version), str(topic)) for version, topic in found]


def _message(kind: str, call_id: UUID, available_at: datetime, **fields: Any) -> OutboxMessage:
    values: dict[str, Any] = {"tenant_id": TENANT, "attempt": 1, **fields}
    return OutboxMessage(
        kind=kind, service_call_id=call_id, available_at=available_at, **values
    )


def _unsaved(name: str, due_at: datetime) -> ServiceCall:
    """A new call whose events are not saved yet."""
    return ServiceCall.submit(
        id=new_service_call_id(),
        tenant_id=TENANT,
        name=name,
        request=RequestSpec("GET", URL),
        due_at=due_at,
    )


def _assert_nothing_recorded(container: Container, call: ServiceCall, events_before: int) -> None:
    """Neither ``call``'s events nor its outbox messages are there, nor any other event."""
    with pytest.raises(AggregateNotFoundError):
        container.service_calls.repository.get(call.id)
    assert outbox_rows(container.database_url, call.id) == []
    assert event_count(container.database_url) == events_before


def _submit(container: Container, due_in: float = 60.0) -> ServiceCall:
    command = SubmitServiceCall(
        TENANT, "atomic", RequestSpec("POST", URL), utcnow() + timedelta(seconds=due_in)
    )
    call, created = container.service_calls.submit(command)
    assert created
    return call


def test_submit_records_events_and_exactly_one_timer_row_at_due_time(
    container: Container,
) -> None:
    url = container.database_url
    call = _submit(container)

    messages = outbox_rows(url, call.id)
    assert len(messages) == 1
    _id, kind, attempt, due_at, available_at, claims, _payload = messages[0]
    assert (kind, attempt, claims) == (START, 1, 0)
    assert available_at == call.due_at
    assert due_at == call.due_at
    assert _event_topics(url, call.id) == [(1, "duecall:ServiceCall.Submitted")]


def test_a_write_conflict_rolls_back_the_outbox_changes_with_the_events(
    container: Container,
) -> None:
    """A stale writer's save fails as a whole: it neither consumes nor publishes messages."""
    url = container.database_url
    app = container.service_calls
    call = _submit(container)
    timer_id = outbox_rows(url, call.id)[0][0]
    stale: ServiceCall = app.repository.get(call.id)
    winner: ServiceCall = app.repository.get(call.id)
    now = utcnow() + timedelta(seconds=120)  # past the due time, so start() records Started
    assert winner.start(1, now) is not None
    app.save(winner)  # version 2 is taken; the timer row is deliberately left in place
    events_before = event_count(url)

    assert stale.start(1, now) is not None  # also wants version 2
    marker = _message(EXECUTE, call.id, now, payload={"m": 1})
    changes = OutboxChanges(consume=[timer_id], publish=[marker])
    with pytest.raises(IntegrityError):
        app.save(stale, effects=TransactionEffects(changes))

    # The timer row is not consumed, and nothing new is published.
    assert outbox_rows(url, call.id, ("id", "kind")) == [(timer_id, START)]
    assert event_count(url) == events_before
    assert [t for _, t in _event_topics(url, call.id)][-1] == "duecall:ServiceCall.Started"
    assert len(_event_topics(url, call.id)) == 2


def test_one_conflict_in_a_batch_rolls_back_every_aggregate_and_message_of_the_batch(
    container: Container,
) -> None:
    url = container.database_url
    app = container.service_calls
    conflicting, innocent = _submit(container), _submit(container)
    timers = {c.id: outbox_rows(url, c.id)[0][0] for c in (conflicting, innocent)}
    now = utcnow() + timedelta(seconds=120)
    winner: ServiceCall = app.repository.get(conflicting.id)
    stale: ServiceCall = app.repository.get(conflicting.id)
    fine: ServiceCall = app.repository.get(innocent.id)
    winner.start(1, now)
    app.save(winner)
    events_before = event_count(url)

    stale.start(1, now)
    fine.start(1, now)
    publish = [
        _message(EXECUTE, c.id, now) for c in (stale, fine)
    ]
    changes = OutboxChanges(consume=list(timers.values()), publish=publish)
    with pytest.raises(IntegrityError):
        app.save(stale, fine, effects=TransactionEffects(changes))

    assert event_count(url) == events_before
    assert app.repository.get(innocent.id).status == Status.SCHEDULED
    for call_id, timer_id in timers.items():
        assert [(r[0], r[1]) for r in outbox_rows(url, call_id)] == [(timer_id, START)]


def test_a_message_that_cannot_be_written_prevents_its_events_and_the_session_recovers(
    container: Container,
) -> None:
    url = container.database_url
    app = container.service_calls
    now = utcnow()
    call = _unsaved("unwritable", now)
    unserialisable = _message(START, call.id, now, payload={"x": object()})
    events_before = event_count(url)

    with pytest.raises(TypeError, match="not JSON serializable"):
        app.save(call, effects=TransactionEffects(OutboxChanges(publish=[unserialisable])))

    _assert_nothing_recorded(container, call, events_before)
    # The pool's connections are usable afterwards: the next writes go through.
    for _ in range(6):
        after = _submit(container)
        assert len(outbox_rows(url, after.id)) == 1
        assert app.repository.get(after.id).status == Status.SCHEDULED


def test_a_message_violating_an_outbox_constraint_prevents_its_events(
    container: Container,
) -> None:
    """A failure raised by the server (not by the client) inside the pipeline also rolls back."""
    url = container.database_url
    app = container.service_calls
    now = utcnow()
    call = _unsaved("null-tenant", now)
    invalid = _message(START, call.id, now, tenant_id=None)
    events_before = event_count(url)

    # Reported as eventsourcing's IntegrityError, the same class as a version conflict.
    with pytest.raises(IntegrityError, match="tenant_id"):
        app.save(call, effects=TransactionEffects(OutboxChanges(publish=[invalid])))

    _assert_nothing_recorded(container, call, events_before)
    assert _submit(container).status == Status.SCHEDULED
