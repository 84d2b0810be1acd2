"""A worker stage: claim messages of one kind in batches, handle them, sleep until more are due."""

import threading
import time
from collections.abc import Callable, Sequence

import structlog

from application.batching import in_batch_or_one_by_one
from application.outbox import Outbox, OutboxMessage

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
    ) -> None:
        self.name = name
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
            except Exception:
                log.exception("stage_failed", stage=self.name, backoff=backoff)
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def run_once(self) -> int:
        messages = self._outbox.claim(self.kind, self._batch_size)
        if messages:
            self._looked_again = False
            in_batch_or_one_by_one(self._handle, messages)
        return len(messages)

    def stop(self) -> None:
        self.stopped.set()  # a waiting loop notices within one poll interval

    def _idle(self) -> None:
        seconds = self._outbox.seconds_until_next(self.kind)
        if seconds is not None and seconds <= 0:
            # Something is due but was not claimed: it became due just now (look again at
            # once), or it is held back (a concurrency limit): wait for a wake-up.
            if not self._looked_again:
                self._looked_again = True
                return
            seconds = None
        self._looked_again = False
        timeout = self._poll_interval if seconds is None else min(seconds, self._poll_interval)
        self._outbox.wait(self.kind, timeout)


def not_before_due(handle: Callable[[Sequence[OutboxMessage]], None]) -> Callable[
    [Sequence[OutboxMessage]], None
]:
    """Wrap a handler so it never runs before the latest due time of its batch (this clock)."""

    def handle_when_due(messages: Sequence[OutboxMessage]) -> None:
        latest = max((m.due_at for m in messages if m.due_at), default=None)
        if latest is not None:
            delay = latest.timestamp() - time.time()
            if delay > 0:
                time.sleep(delay)
        handle(messages)

    return handle_when_due
