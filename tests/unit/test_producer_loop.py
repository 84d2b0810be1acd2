"""A producer's loop (here the workflow loop): claims its kind's messages in batches, hands
them to its handler, hands back what still conflicts, and waits for the next one (or a
notify) when there is none."""

from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from application.dispatch.producer_loop import IDLE_WAIT, ProducerLoop
from application.outbox import WORKFLOW, Claimed, OutboxMessage

RUN = UUID("0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b")


def _message(n: int) -> OutboxMessage:
    return OutboxMessage(WORKFLOW, "acme", RUN, 0, datetime(2026, 1, 1, tzinfo=UTC), id=n)


class FakeOutbox:
    def __init__(self, batches: list[Claimed]) -> None:
        self.batches = batches
        self.claimed_kinds: list[str] = []
        self.released: list[OutboxMessage] = []
        self.waits: list[tuple[str, float]] = []
        self.woken: list[str] = []

    def claim(self, kind: str, limit: int, lookahead: float = 0.0) -> Claimed:
        self.claimed_kinds.append(kind)
        return self.batches.pop(0) if self.batches else Claimed()

    def release(self, messages: Sequence[OutboxMessage]) -> int:
        self.released.extend(messages)
        return len(messages)

    def changed_since(self, versions: dict[UUID, int]) -> set[UUID]:
        return set()

    def wait(self, kind: str, timeout: float, *, or_slot_freed: bool = False) -> None:
        self.waits.append((kind, timeout))

    def wake(self, kind: str) -> None:
        self.woken.append(kind)


def test_a_batch_is_handled_then_the_loop_waits_until_the_next_is_available() -> None:
    handled: list[list[OutboxMessage]] = []
    outbox = FakeOutbox([Claimed([_message(1), _message(2)], next_in=4.0)])
    loop = ProducerLoop(WORKFLOW, outbox, lambda batch: handled.append(list(batch)), batch_size=10)
    assert loop.run_once() == 2
    assert handled == [[_message(1), _message(2)]]
    assert outbox.claimed_kinds == [WORKFLOW]
    assert outbox.waits == [(WORKFLOW, 4.0)]
    assert loop.run_once() == 0
    assert outbox.waits[-1] == (WORKFLOW, IDLE_WAIT)  # nothing pending: a notify wakes it


def test_a_full_batch_claims_again_at_once() -> None:
    outbox = FakeOutbox([Claimed([_message(1), _message(2)], next_in=None)])
    loop = ProducerLoop(WORKFLOW, outbox, lambda batch: None, batch_size=2)
    assert loop.run_once() == 2
    assert outbox.waits == []


def test_messages_that_keep_conflicting_are_handed_back() -> None:
    def conflicting(batch: Sequence[OutboxMessage]) -> None:
        raise IntegrityError("version taken")

    outbox = FakeOutbox([Claimed([_message(1)], next_in=None)])
    loop = ProducerLoop(WORKFLOW, outbox, conflicting, batch_size=10)
    loop.run_once()
    assert outbox.released == [_message(1)]


def test_stop_wakes_the_wait() -> None:
    outbox = FakeOutbox([])
    loop = ProducerLoop(WORKFLOW, outbox, lambda batch: None, batch_size=10)
    loop.stop()
    assert loop.stopped.is_set()
    assert outbox.woken == [WORKFLOW]
