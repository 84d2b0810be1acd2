"""The timer waits until the next start message enters its lookahead, as its claim reported
it (no query of its own), or for a freed slot when one already in it was held back."""

from collections.abc import Sequence
from uuid import UUID

import pytest

from application.dispatch.timer import Timer
from application.outbox import START, Claimed, OutboxMessage


class ReportingOutbox:
    """Claims nothing, reporting the next start message ``next_in`` seconds away."""

    def __init__(self, next_in: float | None) -> None:
        self.next_in = next_in
        self.waits: list[tuple[str, float, bool]] = []

    def claim(self, kind: str, limit: int, lookahead: float = 0.0) -> Claimed:
        return Claimed([], self.next_in)

    def release(self, messages: Sequence[OutboxMessage]) -> int:
        return 0

    def changed_since(self, versions: dict[UUID, int]) -> set[UUID]:
        return set()

    def wait(self, kind: str, timeout: float, *, or_slot_freed: bool = False) -> None:
        self.waits.append((kind, timeout, or_slot_freed))

    def wake(self, kind: str) -> None:
        pass


@pytest.mark.parametrize(
    ("next_in", "timeout", "held_back"),
    [
        (3.0, 2.0, False),  # enters the 1 s lookahead in 2 s
        (0.4, 0.5, True),  # already in it, not claimed: a limit holds it (half the lookahead)
        (None, 10.0, False),  # none: the poll interval
    ],
)
def test_the_timer_waits_for_what_its_claim_said_comes_next(
    next_in: float | None, timeout: float, held_back: bool
) -> None:
    outbox = ReportingOutbox(next_in)
    timer = Timer(outbox, lambda _: None, batch_size=10, poll_interval=10.0, lookahead=1.0)

    assert timer.run_once() == 0

    ((kind, waited, or_slot_freed),) = outbox.waits
    assert kind == START
    assert waited == pytest.approx(timeout, abs=0.05)
    assert or_slot_freed is held_back
