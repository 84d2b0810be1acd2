"""The recorder's one statement (``duecall_record``): the events as eventsourcing would store
them, their notification ids in insert order, and the outbox rows the transaction publishes,
fresh ones numbered by the sequence and announced, leased ones as given and not announced."""

import threading
from datetime import timedelta
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent

from application.clock import utcnow
from application.outbox import EXECUTE, START, OutboxChanges, OutboxMessage, TransactionEffects
from infrastructure.container import Container
from infrastructure.schema import OUTBOX_CHANNEL
from tests.support.db_queries import outbox_rows, rows

pytestmark = pytest.mark.smoke


def _listen(url: str, channel: str, heard: list[str]) -> threading.Thread:
    """A thread collecting the payloads notified on ``channel`` for a second from now."""
    ready = threading.Event()

    def listen() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"LISTEN {channel}")
            ready.set()
            heard.extend(n.payload for n in conn.notifies(timeout=1.0))

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10)
    return thread


def test_events_come_back_with_their_notification_ids_in_insert_order(
    container: Container,
) -> None:
    first, second = uuid4(), uuid4()
    stored = [
        StoredEvent(first, 1, "duecall:Test.A", b'{"a":1}'),
        StoredEvent(second, 1, "duecall:Test.B", b"\x00\xffbinary"),
        StoredEvent(first, 2, "duecall:Test.C", b"{}"),
    ]
    ids = container.service_calls.recorder.insert_events(stored)

    assert ids is not None
    assert len(ids) == 3
    assert ids == sorted(ids)
    found = rows(container.database_url,
                 "SELECT notification_id, originator_id, originator_version, topic, state "
                 "FROM duecall_events WHERE notification_id = ANY(%s) ORDER BY notification_id",
                 list(ids))
    assert [(r[1], r[2], r[3], bytes(r[4])) for r in found] == [
        (e.originator_id, e.originator_version, e.topic, e.state) for e in stored
    ]


def test_published_rows_fresh_ones_announced_leased_ones_kept_as_given(
    container: Container,
) -> None:
    url = container.database_url
    call_id, now = uuid4(), utcnow()
    fresh = OutboxMessage(START, "t-record", call_id, 1, available_at=now, host="a.example")
    leased = OutboxMessage(EXECUTE, "t-record", call_id, 1, available_at=now + timedelta(
        seconds=30), due_at=now, id=-987_654, claims=1, payload={"k": "v"})
    heard: list[str] = []
    listening = _listen(url, OUTBOX_CHANNEL, heard)

    ids = container.service_calls.recorder.insert_events(
        [], effects=TransactionEffects(OutboxChanges(publish=[fresh, leased], frees_slots=True))
    )

    assert ids == []
    (leased_row, fresh_row) = sorted(outbox_rows(url, call_id, ("id", "kind", "claims",
                                                                 "payload")), key=lambda r: r[1])
    assert leased_row == (-987_654, EXECUTE, 1, {"k": "v"})
    assert fresh_row[0] > 0
    assert fresh_row[1:] == (START, 0, {})
    listening.join(5)
    assert sorted(heard) == ["slot_freed", START]  # not the leased EXECUTE
