"""The pieces that carry work across a database outage, without a database.

* the timer keeps the calls it holds, and starts them once the database is back;
* a write conflict on a shared aggregate is retried from fresh state (the batch, then each item)
  and what still conflicts is handed back at once, not left to its lease;
* group commit fails a whole batch at once while the database is away (no one-by-one retries),
  and a submit that waited too long is withdrawn before anything is recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError

from application.commands import SubmitServiceCall
from application.dispatch.batching import ITEM_ATTEMPTS, in_batch_or_one_by_one
from application.dispatch.timer import Timer
from application.group_commit import GroupCommit, NotRecordedError
from application.outbox import START, Claimed, OutboxMessage, still_leased
from application.service_calls import SubmittedCalls
from domain.request import RequestSpec
from domain.service_call import ServiceCall

UNAVAILABLE = (OperationalError,)


def _message(kind: str, *, lease_left: float = 30.0, due_in: float = 0.0) -> OutboxMessage:
    now = datetime.now(UTC)
    return OutboxMessage(
        kind, "t", uuid4(), 1,
        available_at=now + timedelta(seconds=lease_left),
        due_at=now + timedelta(seconds=due_in),
        id=int(time.monotonic_ns() % 1_000_000_000), claims=1,
    )


class FakeOutbox:
    def __init__(self, batches: list[list[OutboxMessage]]) -> None:
        self.batches = batches
        self.claims = 0
        self.released: list[OutboxMessage] = []

    def claim(self, kind: str, limit: int, lookahead: float = 0.0) -> Claimed:
        self.claims += 1
        return Claimed(self.batches.pop(0) if self.batches else [])

    def release(self, messages: Sequence[OutboxMessage]) -> int:
        self.released.extend(messages)
        return len(messages)

    def changed_since(self, versions: dict[UUID, int]) -> set[UUID]:
        return set()

    def wake(self, kind: str) -> None:
        pass

    def wait(self, kind: str, timeout: float, *, or_slot_freed: bool = False) -> None:
        time.sleep(min(timeout, 0.01))


def test_messages_whose_leases_are_ending_are_not_kept() -> None:
    fresh, ending = _message(START, lease_left=20), _message(START, lease_left=0.5)
    assert still_leased([fresh, ending]) == [fresh]


def test_the_timer_starts_the_calls_it_held_once_the_database_is_back() -> None:
    held = [_message(START, lease_left=30, due_in=-0.1)]
    outbox = FakeOutbox([held])
    started: list[list[OutboxMessage]] = []
    down = [True]

    def start_due(messages: Sequence[OutboxMessage]) -> None:
        if down:
            down.pop()
            raise OperationalError("server closed the connection unexpectedly")
        started.append(list(messages))

    timer = Timer(outbox, start_due, batch_size=10, poll_interval=0.01, lookahead=1.0,
                  unavailable=UNAVAILABLE)
    thread = threading.Thread(target=timer.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not started and time.monotonic() < deadline:
        time.sleep(0.01)
    timer.stop()
    thread.join(5)
    assert started == [held]  # kept through the outage (claimed once: the fake has no more)


def test_the_timer_hands_back_what_it_holds_when_it_stops() -> None:
    held = [_message(START, lease_left=40, due_in=10)]  # due in 10 s: held, not started
    outbox = FakeOutbox([held])
    timer = Timer(outbox, lambda _: None, batch_size=10, poll_interval=0.01, lookahead=30.0)
    thread = threading.Thread(target=timer.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while outbox.claims == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    timer.stop()
    thread.join(5)
    assert outbox.released == held


def test_a_conflict_on_a_shared_aggregate_is_retried_from_fresh_state() -> None:
    items = ["a", "b", "c"]
    conflicts = {"b": ITEM_ATTEMPTS - 1}  # b keeps losing the race, then gets through
    handled: list[str] = []

    def handle(batch: Sequence[str]) -> None:
        if len(batch) > 1:
            raise IntegrityError("the batch lost a race")
        item = batch[0]
        if conflicts.get(item):
            conflicts[item] -= 1
            raise IntegrityError("duplicate key value violates unique constraint")
        handled.append(item)

    assert in_batch_or_one_by_one(handle, items) == []
    assert handled == items


def test_an_item_that_keeps_conflicting_is_returned_without_stopping_the_rest() -> None:
    handled: list[str] = []

    def handle(batch: Sequence[str]) -> None:
        if len(batch) > 1 or batch[0] == "b":
            raise IntegrityError("conflict")
        handled.append(batch[0])

    assert in_batch_or_one_by_one(handle, ["a", "b", "c"]) == ["b"]  # the caller hands it back
    assert handled == ["a", "c"]


def _command() -> SubmitServiceCall:
    return SubmitServiceCall("t", "n", RequestSpec("GET", "http://x.test/"),
                             datetime.now(UTC) + timedelta(hours=1))


def test_group_commit_fails_a_whole_batch_at_once_while_the_database_is_away() -> None:
    calls: list[int] = []
    gate = threading.Event()

    def submit_many(commands: Sequence[SubmitServiceCall]) -> SubmittedCalls:
        calls.append(len(commands))
        gate.wait(5)  # let the other submits queue up behind the first
        raise OperationalError("couldn't get a connection after 5.00 sec")

    group = GroupCommit(submit_many, unavailable=UNAVAILABLE)
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            group.submit(_command(), timeout=10)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(errors) == 6
    assert all(isinstance(e, OperationalError) for e in errors)
    assert sum(calls) == 6  # each command tried once: no one-by-one retries
    assert len(calls) < 6  # and in batches


def test_a_submit_that_waited_too_long_is_withdrawn_before_it_is_recorded() -> None:
    recorded: list[SubmitServiceCall] = []
    gate = threading.Event()

    def submit_many(commands: Sequence[SubmitServiceCall]) -> SubmittedCalls:
        gate.wait(5)  # the writer is stuck on the first command
        recorded.extend(commands)
        return SubmittedCalls([(cast(ServiceCall, None), True) for _ in commands], None)

    group = GroupCommit(submit_many, unavailable=UNAVAILABLE)
    first = threading.Thread(target=lambda: group.submit(_command(), timeout=10),
                             daemon=True)
    first.start()
    time.sleep(0.05)
    late = _command()
    with pytest.raises(NotRecordedError):
        group.submit(late, timeout=0.1)
    gate.set()
    first.join(5)
    time.sleep(0.1)
    assert late not in recorded
