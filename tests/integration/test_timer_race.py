"""Timers in separate workers racing for the same due rows start each attempt exactly once.

Two Containers built from the same settings have separate connection pools: two workers.
"""

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from application.clock import utcnow
from application.commands import SubmitServiceCall
from application.dispatch.batching import in_batch_or_one_by_one
from application.dispatch.timer import Timer
from application.outbox import EXECUTE, START, OutboxMessage, unread
from application.service_calls import ServiceCalls
from domain.request import RequestSpec
from harness.target_server import TargetServer
from infrastructure.container import Container
from infrastructure.settings import Settings
from tests.support.db_queries import event_count, rows
from tests.support.waiting import wait_until

TENANT = "t-race"
STARTED = "duecall:ServiceCall.Started"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Concurrency limits out of the way: this is about timers racing, not about limits."""
    return settings.model_copy(
        update={"tenant_max_in_flight": 100_000, "host_max_in_flight": 100_000}
    )


@pytest.fixture
def second_container(settings: Settings, container: Container) -> Iterator[Container]:
    """Another worker: same database, its own pools and listener (built after the cleanup)."""
    other = Container.build(settings)
    try:
        yield other
    finally:
        other.close()


def _submit_due_now(container: Container, url: str, count: int) -> list[UUID]:
    now = utcnow()
    ids = []
    for i in range(count):
        command = SubmitServiceCall(TENANT, f"race-{i % 7}", RequestSpec("GET", url), now)
        call, _ = container.service_calls.submit(command)
        ids.append(call.id)
    return ids


def _counts(url: str, sql: str, *params: Any) -> dict[UUID, int]:
    return {row[0]: int(row[1]) for row in rows(url, sql, *params)}


def _started_events(url: str) -> dict[UUID, int]:
    return _counts(
        url,
        "SELECT originator_id, count(*) FROM duecall_events WHERE topic = %s "
        "GROUP BY originator_id",
        STARTED,
    )


def _outbox_rows(url: str, kind: str) -> dict[UUID, int]:
    return _counts(
        url,
        "SELECT service_call_id, count(*) FROM duecall_outbox WHERE kind = %s "
        "GROUP BY service_call_id",
        kind,
    )


def _timer(container: Container, batch_size: int) -> Timer:
    """The timer as application/workers.py builds it (no lookahead: all is due now)."""
    return Timer(
        container.outbox,
        container.service_calls.start_due,
        batch_size=batch_size,
        poll_interval=0.05,
        lookahead=0.0,
    )


def test_two_timers_racing_for_the_same_due_rows_start_each_attempt_once(
    container: Container, second_container: Container
) -> None:
    url = container.database_url
    with TargetServer() as target:
        ids = _submit_due_now(container, f"{target.url}/ok", 200)
        go = threading.Barrier(2)

        def run_timer(worker: Container) -> int:
            stage = _timer(worker, batch_size=10)
            handled = 0
            go.wait(5)
            deadline = time.monotonic() + 30
            while worker.outbox.depth().get(START, 0):
                claimed = stage.run_once()
                handled += claimed
                if not claimed:
                    time.sleep(0.005)  # the rest is leased by the other timer
                assert time.monotonic() < deadline, "start rows left behind"
            return handled

        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(run_timer, c) for c in (container, second_container)]
            handled = [f.result(timeout=60) for f in futures]

        assert target.requests == []  # timers only start attempts; nothing was sent
    assert sum(handled) == 200
    assert all(handled), f"both timers should have taken part: {handled}"
    assert _started_events(url) == dict.fromkeys(ids, 1)
    assert _outbox_rows(url, EXECUTE) == dict.fromkeys(ids, 1)
    assert _outbox_rows(url, START) == {}


def test_the_same_claimed_messages_handled_twice_at_once_start_each_attempt_once(
    container: Container, second_container: Container
) -> None:
    """A lease that ran out mid-handling: two timers hold the very same messages.

    A third connection holds the events table lock until both have loaded the calls and
    are blocked writing, so the race is certain: one commits, the other's batch conflicts
    (IntegrityError), is retried one by one from fresh state, and records nothing new.
    """
    url = container.database_url
    ids = _submit_due_now(container, "http://127.0.0.1:9/never-sent", 100)
    messages = container.outbox.claim(START, 500)
    assert {m.service_call_id for m in messages} == set(ids)
    conflicts: list[int] = []

    def counting_conflicts(app: ServiceCalls) -> Callable[[Sequence[OutboxMessage]], None]:
        def handle(batch: Sequence[OutboxMessage]) -> None:
            try:
                app.start_due(batch)
            except IntegrityError:
                conflicts.append(len(batch))
                raise

        return handle

    with (
        psycopg.connect(url) as blocker,
        psycopg.connect(url, autocommit=True) as probe,  # activity is cached per transaction
        ThreadPoolExecutor(2) as pool,
    ):
        blocker.execute("LOCK TABLE duecall_events IN EXCLUSIVE MODE")
        futures = [
            pool.submit(
                # as the timer does: after a conflict, the calls are read anew
                in_batch_or_one_by_one, counting_conflicts(c.service_calls), messages, unread
            )
            for c in (container, second_container)
        ]
        wait_until(lambda: _backends_waiting_for_locks(probe) >= 2, timeout=15)
        blocker.rollback()
        for future in futures:
            future.result(timeout=60)

    assert conflicts == [len(messages)]  # one whole batch lost the race; no retry conflicted
    assert _started_events(url) == dict.fromkeys(ids, 1)
    assert _outbox_rows(url, EXECUTE) == dict.fromkeys(ids, 1)
    assert _outbox_rows(url, START) == {}

    events = event_count(url)
    # a late redelivery after all that (held by a timer: without its claim's read)
    container.service_calls.start_due(list(map(unread, messages)))
    assert event_count(url) == events
    assert _outbox_rows(url, EXECUTE) == dict.fromkeys(ids, 1)


def _backends_waiting_for_locks(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND pid <> pg_backend_pid()",
    ).fetchone()
    return int(row[0]) if row else 0
