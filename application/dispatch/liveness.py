"""Worker liveness: this worker says it is alive every ``interval`` seconds, and ends the
leases of workers that stopped saying so ``dead_after`` seconds ago.

A worker killed mid-attempt leaves its messages leased to it; without liveness they wait for
their leases to end (an attempt's timeout plus grace, a ``start`` message's 30 s). With it,
any live worker notices within ``dead_after`` and a second, frees them, and they are made
again at once, with the same Idempotency-Key (at least once). The registry port is
infrastructure.worker_registry's.

A worker reaps only once it has itself been beating for ``dead_after``: after a database
outage every worker's last beat is old, and the first one back must not take the others for
dead before they have had the time to beat again.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

import structlog

from application.supervision import supervise

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Reaped:
    workers: int  # dead workers found (their rows deleted)
    messages: int  # their leased messages, available again


@dataclass(frozen=True)
class LiveWorker:
    id: UUID
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    in_flight: int
    silent_seconds: float  # since its last heartbeat


class WorkerRegistry(Protocol):
    worker_id: UUID

    def beat(self, in_flight: int) -> None: ...

    def reap(self, dead_after: float) -> Reaped: ...

    def leave(self) -> Reaped: ...

    def live(self) -> list[LiveWorker]: ...


class Liveness:
    name = "liveness"

    def __init__(
        self,
        registry: WorkerRegistry,
        in_flight: Callable[[], int],
        *,
        interval: float,
        dead_after: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._in_flight = in_flight
        self._interval = interval
        self._dead_after = dead_after
        self._clock = clock
        self._beating_since: float | None = None  # beats since then, none missed
        self._last_beat = 0.0
        self.stopped = threading.Event()

    def run(self) -> None:
        supervise(self.run_once, self.stopped, self.name)

    def run_once(self) -> int:
        """Beat, then (once beating for ``dead_after``) end the dead workers' leases: after
        the beat, so never this worker's own; wait for the next round. Returns how many
        messages were freed."""
        try:
            self._registry.beat(self._in_flight())
        except Exception:
            self._beating_since = None
            raise
        now = self._clock()
        if self._beating_since is None or now - self._last_beat > self._dead_after:
            self._beating_since = now  # (again) alive to the others from now on
        self._last_beat = now
        freed = 0
        if now - self._beating_since >= self._dead_after:
            reaped = self._registry.reap(self._dead_after)
            freed = reaped.messages
            if reaped.workers:
                log.warning("dead_workers_reaped", workers=reaped.workers, messages=freed)
        self.stopped.wait(self._interval)
        return freed

    def stop(self) -> None:
        """Stop beating, and leave: after the other loops handed back what they held."""
        self.stopped.set()

    def leave(self) -> None:
        """This worker's row deleted, anything still leased to it available again."""
        try:
            left = self._registry.leave()
        except Exception:  # the database is away: the row goes stale and is reaped
            log.warning("worker_leave_failed", exc_info=True)
        else:
            log.info("worker_left", leases_ended=left.messages)
