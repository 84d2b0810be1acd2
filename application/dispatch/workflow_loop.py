"""The workflow loop: hears back from workflow steps' calls and orders the next steps.

It claims ``workflow`` messages (a step's call's terminal outcome with its final response,
available at once) and hands each batch to ``Workflows.handle`` (application/workflows.py),
which records the outcomes on their runs and submits the calls of the steps that follow, due
now, so the timer starts them as it starts any call. Between claims it sleeps until the next
message is available (the claim says when) or a notify wakes it.
"""

import threading
from collections.abc import Callable, Sequence

import structlog

from application.dispatch.batching import in_batch_or_one_by_one
from application.outbox import WORKFLOW, Outbox, OutboxMessage
from application.supervision import supervise

log = structlog.get_logger(__name__)

IDLE_WAIT = 30.0  # seconds without any workflow message: look again (a missed notify)


class WorkflowLoop:
    name = "workflows"

    def __init__(
        self,
        outbox: Outbox,
        handle: Callable[[Sequence[OutboxMessage]], None],
        *,
        batch_size: int,
    ) -> None:
        self._outbox = outbox
        self._handle = handle
        self._batch_size = batch_size
        self.stopped = threading.Event()

    def run(self) -> None:
        supervise(self.run_once, self.stopped, self.name)

    def stop(self) -> None:
        self.stopped.set()
        self._outbox.wake(WORKFLOW)

    def run_once(self) -> int:
        """Handle what is available (returns how many messages), else wait; one step of
        ``run``."""
        claimed = self._outbox.claim(WORKFLOW, self._batch_size)
        if claimed:
            left = in_batch_or_one_by_one(self._handle, claimed)
            if left:  # still conflicting: available again now, not when their leases end
                self._outbox.release(left)
            if len(claimed) == self._batch_size:
                return len(claimed)
        wait = IDLE_WAIT if claimed.next_in is None else claimed.next_in
        self._outbox.wait(WORKFLOW, min(max(wait, 0.0), IDLE_WAIT))
        return len(claimed)
