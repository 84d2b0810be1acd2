"""Outbox claims are leases: invisible to other claims until they end, then claimable again."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from uuid import uuid4

import pytest

from application.clock import utcnow
from application.outbox import EXECUTE, START, OutboxChanges, OutboxMessage, TransactionEffects
from infrastructure.container import Container
from infrastructure.notifications import Notifications
from infrastructure.outbox import PostgresOutbox
from tests.support.waiting import wait_until

TENANT = "t-lease"


@pytest.fixture
def other_worker(container: Container) -> Iterator[PostgresOutbox]:
    """A second outbox on its own connection pool and listener, as another worker process
    would have."""
    notifications = Notifications(container.database_url)
    outbox = PostgresOutbox(container.database_url, notifications)
    try:
        yield outbox
    finally:
        outbox.close()
        notifications.close()


def _message(kind: str, available_at: datetime, lease_seconds: float | None = None,
              **payload: object) -> OutboxMessage:
    return OutboxMessage(
        kind=kind,
        tenant_id=TENANT,
        service_call_id=uuid4(),
        attempt=1,
        available_at=available_at,
        payload=dict(payload),
        lease_seconds=lease_seconds,
    )


def _publish(container: Container, *messages: OutboxMessage) -> None:
    container.service_calls.save(effects=TransactionEffects(OutboxChanges(publish=messages)))


def test_a_claimed_message_is_invisible_until_its_lease_ends_then_claimable_again(
    container: Container, other_worker: PostgresOutbox
) -> None:
    outbox = container.outbox
    _publish(container, _message(START, utcnow() - timedelta(seconds=1), 0.5, n=7))

    claimed_at = time.monotonic()
    (first,) = outbox.claim(START, 10)
    assert first.claims == 1
    assert first.payload == {"n": 7}
    assert other_worker.claim(START, 10) == []
    nothing = outbox.claim(START, 10)
    assert nothing == []
    assert nothing.next_in is not None
    assert 0 < nothing.next_in <= 0.5  # the claimed message's lease ends then

    (again,) = wait_until(lambda: other_worker.claim(START, 10), timeout=5, interval=0.02)
    assert time.monotonic() - claimed_at >= 0.45
    assert (again.id, again.claims, again.payload) == (first.id, 2, first.payload)
    assert again.available_at > first.available_at  # a new lease
    assert outbox.claim(START, 10) == []

    container.service_calls.save(effects=TransactionEffects(OutboxChanges(consume=[again.id or 0])))
    assert other_worker.claim(START, 10).next_in is None
    time.sleep(0.6)  # past the lease: a consumed message never comes back
    assert outbox.claim(START, 10) == []


def test_a_message_available_in_the_future_is_not_claimed_before_then(
    container: Container,
) -> None:
    outbox = container.outbox
    assert outbox.claim(START, 10).next_in is None
    available_at = utcnow() + timedelta(seconds=1)
    _publish(container, _message(START, available_at))

    nothing = outbox.claim(START, 10)
    assert nothing == []
    assert nothing.next_in is not None
    assert 0.5 < nothing.next_in <= 1.0
    assert outbox.claim(EXECUTE, 10) == []  # kinds are separate queues

    (claimed,) = wait_until(lambda: outbox.claim(START, 10), timeout=5, interval=0.02)
    assert time.time() >= available_at.timestamp()
    assert claimed.claims == 1
    assert claimed.due_at == available_at


def test_concurrent_claims_never_hand_out_the_same_message_twice(
    container: Container, other_worker: PostgresOutbox
) -> None:
    now = utcnow()
    _publish(container, *(_message(EXECUTE, now, i=i) for i in range(300)))
    start = threading.Barrier(2)

    def drain(outbox: PostgresOutbox) -> list[int]:
        start.wait(5)
        ids: list[int] = []
        deadline = time.monotonic() + 20
        while batch := outbox.claim(EXECUTE, 7):
            ids.extend(m.id or 0 for m in batch)
            assert time.monotonic() < deadline
        return ids

    with ThreadPoolExecutor(2) as pool:
        mine, theirs = (f.result() for f in [pool.submit(drain, container.outbox),
                                             pool.submit(drain, other_worker)])

    assert len(mine) + len(theirs) == 300
    assert len(set(mine) | set(theirs)) == 300
    assert mine
    assert theirs


def test_publishing_a_message_wakes_a_waiting_worker_at_once(container: Container) -> None:
    outbox = container.outbox

    def settled() -> bool:  # the listener is connected and its start-up wake-up is spent
        began = time.monotonic()
        outbox.wait(EXECUTE, 0.3)
        return time.monotonic() - began >= 0.25

    wait_until(settled, timeout=5, interval=0)
    timer = threading.Timer(0.2, _publish, (container, _message(EXECUTE, utcnow())))
    began = time.monotonic()
    timer.start()
    try:
        outbox.wait(EXECUTE, 5.0)
    finally:
        timer.join()
    assert 0.15 <= time.monotonic() - began < 2.0
    assert len(outbox.claim(EXECUTE, 10)) == 1
