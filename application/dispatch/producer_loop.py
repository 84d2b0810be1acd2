"""A producer's loop: the schedule loop and the workflow loop, one class.

It claims its kind's messages and hands each batch to the producer's ``handle``:

* ``schedule`` (``Schedules.handle``, application/schedules.py): a schedule's next nominal
  time, available ``lookahead`` seconds before it, recorded as a fire (a call due at the
  nominal time, so the timer starts it on time as it starts any call); or a fired call's
  outcome, available at once;
* ``workflow`` (``Workflows.handle``, application/workflows.py): a step's call's terminal
  outcome with its final response, recorded on its run, which submits the steps that follow.

Between claims it sleeps until the next message is due (the claim says when) or a notify
wakes it: an idle worker costs no query per second for its producers.
"""

import threading
from collections.abc import Callable, Sequence

import structlog

from application.dispatch.batching import in_batch_or_one_by_one
from application.outbox import Outbox, OutboxMessage
from application.supervision import supervise

log = structlog.get_logger(__name__)

IDLE_WAIT = 30.0  # seconds without any message of the kind: look again (a missed notify)


class ProducerLoop:
    def __init__(
        self,
        kind: str,
        outbox: Outbox,
        handle: Callable[[Sequence[OutboxMessage]], None],
        *,
        batch_size: int,
        lookahead: float = 0.0,
    ) -> None:
        """``lookahead``: messages are claimed this long before they are due."""
        self.name = f"{kind}s"
        self._kind = kind
        self._outbox = outbox
        self._handle = handle
        self._batch_size = batch_size
        self._lookahead = lookahead
        self.stopped = threading.Event()

    def run(self) -> None:
        supervise(self.run_once, self.stopped, self.name)

    def stop(self) -> None:
        self.stopped.set()
        self._outbox.wake(self._kind)

    def run_once(self) -> int:
        """Handle what is due (returns how many messages), else wait; one step of ``run``."""
        claimed = self._outbox.claim(self._kind, self._batch_size, self._lookahead)
        if claimed:
            left = in_batch_or_one_by_one(self._handle, claimed)
            if left:  # still conflicting: available again now, not when their leases end
                self._outbox.release(left)
            if len(claimed) == self._batch_size:
                return len(claimed)
        wait = IDLE_WAIT if claimed.next_in is None else claimed.next_in - self._lookahead
        self._outbox.wait(self._kind, min(max(wait, 0.0), IDLE_WAIT))
        return len(claimed)
