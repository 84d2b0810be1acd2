"""The schedule loop: fires schedules at their nominal times, hears back from their calls.

It claims ``schedule`` messages (a schedule's next nominal time, available ``lookahead``
seconds before it; or a fired call's outcome, available at once) and hands each batch to
``Schedules.handle`` (application/schedules.py), which records the fires as calls due at their
nominal times, so the timer starts them on time as it starts any call. Between claims it
sleeps until the next message is due (the claim says when) or a notify wakes it: an idle
worker costs no query per second for its schedules.
"""

import threading
from collections.abc import Callable, Sequence

import structlog

from application.dispatch.batching import in_batch_or_one_by_one
from application.outbox import SCHEDULE, Outbox, OutboxMessage
from application.supervision import supervise

log = structlog.get_logger(__name__)

IDLE_WAIT = 30.0  # seconds without any schedule message: look again (a missed notify)


class ScheduleLoop:
    name = "schedules"

    def __init__(
        self,
        outbox: Outbox,
        handle: Callable[[Sequence[OutboxMessage]], None],
        *,
        batch_size: int,
        lookahead: float,
    ) -> None:
        self._outbox = outbox
        self._handle = handle
        self._batch_size = batch_size
        self._lookahead = lookahead
        self.stopped = threading.Event()

    def run(self) -> None:
        supervise(self.run_once, self.stopped, self.name)

    def stop(self) -> None:
        self.stopped.set()
        self._outbox.wake(SCHEDULE)

    def run_once(self) -> int:
        """Handle what is due (returns how many messages), else wait; one step of ``run``."""
        claimed = self._outbox.claim(SCHEDULE, self._batch_size, self._lookahead)
        if claimed:
            left = in_batch_or_one_by_one(self._handle, claimed)
            if left:  # still conflicting: available again now, not when their leases end
                self._outbox.release(left)
            if len(claimed) == self._batch_size:
                return len(claimed)
        wait = IDLE_WAIT if claimed.next_in is None else claimed.next_in - self._lookahead
        self._outbox.wait(SCHEDULE, min(max(wait, 0.0), IDLE_WAIT))
        return len(claimed)
