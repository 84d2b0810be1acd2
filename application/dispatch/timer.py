"""The timer: starts due attempts on time.

It claims the ``start`` messages that fall due within ``lookahead`` seconds (each claim is a
lease, so the messages stay durable: a timer that dies only delays its calls until their leases
end and another timer claims them), holds them in memory, and starts each group of messages
due within ``group_window`` of one another at their due time, in one transaction.

With ``prestart`` > 0 it starts them that much *before* they are due: ``start_due`` must then
record each start at its due time and hand the attempts to this worker's own execution loop,
which sends each request at its due time (``Workers`` wires the two together). The durable
commit then happens ahead of the due time instead of between it and the request.
"""

import threading
import time
from collections.abc import Callable, Sequence

import structlog

from application.dispatch.batching import in_batch_or_one_by_one
from application.outbox import START, Outbox, OutboxMessage, still_leased, unread
from application.supervision import supervise

log = structlog.get_logger(__name__)


class Timer:
    name = "timer"

    def __init__(
        self,
        outbox: Outbox,
        start_due: Callable[[Sequence[OutboxMessage]], None],
        *,
        batch_size: int,
        poll_interval: float,
        lookahead: float,
        group_window: float = 0.002,
        unavailable: tuple[type[Exception], ...] = (),
        prestart: float = 0.0,
        free_slots: Callable[[], int] | None = None,
        slots_available: threading.Event | None = None,
    ) -> None:
        """``unavailable``: errors meaning the database is away; the calls held then are kept
        (and started once it is back, while their leases last)."""
        self._unavailable = unavailable
        self._outbox = outbox
        self._start_due = start_due
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._lookahead = lookahead
        self._group_window = group_window
        self._prestart = prestart
        # back-pressure: how many more attempts the execution loop takes (held ones count),
        # and the event it sets when a slot is free again
        self._free_slots = free_slots or (lambda: batch_size)
        self._slots_available = slots_available or threading.Event()
        self._held: list[OutboxMessage] = []
        # the last look found work it could not take (a concurrency limit, or the execution
        # loop full): whoever holds the slots should free them soon (``ExecutionLoop``)
        self.held_back = False
        # the last claim took fewer than it asked for: all that was claimable then. Until a
        # wake-up or the clock says otherwise, claiming again would find nothing
        self._drained = False
        # when the next start message becomes available, as the last claim left them (its
        # claimed messages included: they are started and gone sooner, so never too late)
        self._next_at: float | None = None
        self.stopped = threading.Event()

    def run(self) -> None:
        supervise(self.run_once, self.stopped, self.name, on_error=self._keep_or_drop_held)
        self._hand_back()

    def _keep_or_drop_held(self, error: Exception) -> None:
        """The database away: keep what is held (started once it is back, while the leases
        last); any other failure: drop it (claimed again when the leases end)."""
        if isinstance(error, self._unavailable):
            self._held = still_leased(self._held)
        else:
            self._held.clear()

    def _hand_back(self) -> None:
        """Stopping: the messages held for their due time go back (another timer starts them
        on time, instead of after their leases)."""
        held, self._held = self._held, []
        try:
            released = self._outbox.release(held)
        except Exception:  # the database is away: their leases end on their own
            log.exception("timer_hand_back_failed", held=len(held))
            return
        if held:
            log.info("timer_handed_back", held=len(held), released=released)

    def stop(self) -> None:
        """Stop at once: a wait for more messages or for a free slot ends now."""
        self.stopped.set()
        self._slots_available.set()
        self._outbox.wake(START)

    def run_once(self) -> int:
        """Start what is due (returns how many), else claim, else wait; one step of ``run``."""
        if self._held and _due(self._held[0]) <= time.time() + self._prestart + self._group_window:
            return self._fire()
        self._slots_available.clear()  # before looking: a slot freed after the look still wakes us
        wanted = min(self._batch_size, self._free_slots() - len(self._held))
        if wanted <= 0:  # the execution loop is full: wait for a free slot (or the next held one)
            self.held_back = True
            self._slots_available.wait(self._until_next_held(time.time()))
            return 0
        if self._drained:
            self._drained = False
        else:
            claimed = self._outbox.claim(START, wanted, self._lookahead)
            self._next_at = None if claimed.next_in is None else time.time() + claimed.next_in
            if claimed:
                # what the claim read with a message is good for a start made now (the next
                # step fires those), not for one held until later (its call may change)
                soon = time.time() + self._prestart + self._group_window
                fresh = [m if _due(m) <= soon else unread(m) for m in claimed]
                self._held = sorted([*self._held, *fresh], key=_due)
                self._drained = len(claimed) < wanted
                return 0
        timeout, self.held_back = self._until_next_look(time.time())
        self._outbox.wait(START, timeout, or_slot_freed=self.held_back)
        return 0

    def _fire(self) -> int:
        """Start, in one transaction, everything due by now (or within the group window)."""
        # Starting early, it need not start each group just in time: everything due within half
        # the lead more goes in the same transaction (fewer, larger commits, less CPU near the
        # due times of calls already handed over)
        window = max(self._group_window, self._prestart / 2)
        limit = max(_due(self._held[0]), time.time() + self._prestart) + window
        group = [m for m in self._held if _due(m) <= limit]
        self._held = self._held[len(group) :]
        late_enough = _due(group[-1]) - time.time()
        if late_enough > 0 and not self._prestart:  # never before its due time, by this clock
            time.sleep(late_enough)
        began = time.time()
        try:
            # after a write conflict, its calls are read anew
            left = in_batch_or_one_by_one(self._start_due, group, unread)
            if left:  # still conflicting: available again now, not when the lease ends
                self._outbox.release(left)
        except Exception:  # run() decides what stays
            self._held = sorted([*map(unread, group), *self._held], key=_due)
            raise
        log.debug(
            "timer_fired",
            calls=len(group),
            late_ms=round((began - _due(group[0])) * 1000, 2),
            took_ms=round((time.time() - began) * 1000, 2),
        )
        return len(group)

    def _until_next_held(self, now: float) -> float:
        """Seconds until the next held message is to be started (at most the poll interval)."""
        timeout = self._poll_interval
        if self._held:
            timeout = min(timeout, _due(self._held[0]) - self._prestart - now)
        return max(timeout, 0.0)

    def _until_next_look(self, now: float) -> tuple[float, bool]:
        """Seconds until the next held message is due or the next unclaimed one enters the
        lookahead; and whether one already in it waits for a concurrency slot (held back by a
        limit: a slot freed by any worker wakes us, the timeout is only a fallback)."""
        timeout = self._until_next_held(now)
        if self._next_at is None:
            return timeout, False
        entering = self._next_at - now - self._lookahead
        if entering > 0:
            return min(timeout, entering), False
        return min(timeout, self._lookahead / 2), True


def _due(message: OutboxMessage) -> float:
    assert message.due_at is not None
    return message.due_at.timestamp()
