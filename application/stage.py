"""A worker stage: claim messages of one kind in batches, handle them, sleep until more are due.

When handling fails because the database is away (``unavailable`` errors), the claimed messages
stay in hand and are handled again once it is back, while their leases last; other errors leave
them for redelivery when their leases end.
"""

import threading
from collections.abc import Callable, Sequence

import structlog

from application.batching import in_batch_or_one_by_one
from application.outbox import Outbox, OutboxMessage, still_leased

log = structlog.get_logger(__name__)


class Stage:
    def __init__(
        self,
        name: str,
        kind: str,
        outbox: Outbox,
        handle: Callable[[Sequence[OutboxMessage]], None],
        batch_size: int,
        poll_interval: float,
        linger: float = 0.0,
        unavailable: tuple[type[Exception], ...] = (),
    ) -> None:
        self.name = name
        self._unavailable = unavailable
        self._in_hand: list[OutboxMessage] = []
        self._linger = linger
        self.kind = kind
        self._outbox = outbox
        self._handle = handle
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._looked_again = False
        self.stopped = threading.Event()

    def run(self) -> None:
        """Run until stopped; errors (a database restart, say) are logged and retried."""
        backoff = 0.1
        while not self.stopped.is_set():
            try:
                if self.run_once() == 0:
                    self._idle()
                backoff = 0.1
            except Exception as error:
                log.exception("stage_failed", stage=self.name, backoff=backoff)
                if not isinstance(error, self._unavailable):
                    self._in_hand = []  # redelivered when their leases end
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def run_once(self) -> int:
        messages = still_leased(self._in_hand) or self._outbox.claim(self.kind, self._batch_size)
        if messages:
            self._looked_again = False
            self._in_hand = messages
            left = in_batch_or_one_by_one(self._handle, messages)
            self._in_hand = []
            if left:  # still conflicting: available again now, not when the lease ends
                self._outbox.release(left)
            if len(messages) < self._batch_size and self._linger > 0:
                # Not latency-critical: let more gather, so this stage holds the events
                # table's write lock for fewer, larger transactions.
                self.stopped.wait(self._linger)
        return len(messages)

    def stop(self) -> None:
        self.stopped.set()  # a waiting loop notices within one poll interval

    def _idle(self) -> None:
        seconds = self._outbox.seconds_until_next(self.kind)
        if seconds is not None and seconds <= 0:
            # Something is due but was not claimed: it became due just now (look again at
            # once) or another worker is claiming it (then wait for the next wake-up).
            if not self._looked_again:
                self._looked_again = True
                return
            seconds = None
        self._looked_again = False
        timeout = self._poll_interval if seconds is None else min(seconds, self._poll_interval)
        self._outbox.wait(self.kind, timeout)
