"""The timer uses what its claim read with a message only for a start made at once: a message
it holds until later, and a batch retried after a write conflict, have their calls read anew."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from eventsourcing.persistence import IntegrityError

from application.dispatch.timer import Timer
from application.outbox import START, Claimed, ClaimRead, OutboxMessage

READ = ClaimRead(events=(), circuit_id=None)


def _message(due_in: float) -> OutboxMessage:
    due = datetime.now(UTC) + timedelta(seconds=due_in)
    return OutboxMessage(START, "t", uuid4(), 1, due, due_at=due, id=1, claims=1, read=READ)


class OneClaim:
    """Claims ``messages`` once, then nothing."""

    def __init__(self, messages: list[OutboxMessage]) -> None:
        self.messages = messages

    def claim(self, kind: str, limit: int, lookahead: float = 0.0) -> Claimed:
        claimed, self.messages = self.messages, []
        return Claimed(claimed, None)

    def release(self, messages: Sequence[OutboxMessage]) -> int:
        return 0

    def changed_since(self, versions: dict[UUID, int]) -> set[UUID]:
        return set()

    def wait(self, kind: str, timeout: float, *, or_slot_freed: bool = False) -> None:
        pass

    def wake(self, kind: str) -> None:
        pass


def test_a_message_started_at_once_keeps_its_read_one_held_for_later_does_not() -> None:
    now, later = _message(0.0), _message(0.5)
    started: list[list[OutboxMessage]] = []
    timer = Timer(
        OneClaim([now, later]), lambda batch: started.append(list(batch)),
        batch_size=10, poll_interval=1.0, lookahead=1.0,
    )

    timer.run_once()  # the claim
    timer.run_once()  # the start of the one due now

    assert [[m.read for m in batch] for batch in started] == [[READ]]
    (held,) = timer._held
    assert held.service_call_id == later.service_call_id
    assert held.read is None


def test_a_batch_retried_after_a_conflict_has_its_calls_read_anew() -> None:
    started: list[list[OutboxMessage]] = []

    def start_due(batch: Sequence[OutboxMessage]) -> None:
        started.append(list(batch))
        if len(started) == 1:
            raise IntegrityError("another timer recorded these calls first")

    timer = Timer(
        OneClaim([_message(0.0)]), start_due, batch_size=10, poll_interval=1.0, lookahead=1.0
    )
    timer.run_once()
    timer.run_once()

    assert [[m.read for m in batch] for batch in started] == [[READ], [None]]
