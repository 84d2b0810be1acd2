"""How fresh a read model is, and waiting (bounded) until it has caught up with a write.

Read-your-writes: a write answers with the log position of the last event it recorded
(``X-Duecall-Position``); a read that passes it back as ``min_position`` first waits until the
read model's tracking position has reached it, polling the tracking table every 20 ms (one
indexed read each; no LISTEN connection to hold) for at most ``MAX_WAIT_SECONDS``, and
otherwise answers with what it has, marked ``stale``.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_WAIT_SECONDS = 2.0
POLL_SECONDS = 0.02


@dataclass(frozen=True)
class Freshness:
    """How far a read model has got: its position in the log, and the log's head; ``wanted``
    is the position the reader asked for (``min_position``), if any."""

    position: int
    head: int
    wanted: int | None = None

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)

    @property
    def stale(self) -> bool:
        """The read model had not reached the position asked for when it was read."""
        return self.wanted is not None and self.position < self.wanted


@dataclass(frozen=True)
class ProjectionStatus:
    """A read model's position, lag, and the events it could not fold (still unresolved)."""

    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    failures: int = 0
    last_failed_position: int | None = None
    last_error: str | None = None


def unready_reasons(statuses: list[ProjectionStatus], max_lag_seconds: float) -> list[str]:
    """Why the read models make the service not ready: a model stuck on events it could not
    fold, or further behind than ``max_lag_seconds``; empty when they are fine."""
    reasons = []
    for s in statuses:
        if s.failures:
            reasons.append(f"read model {s.name!r} could not fold {s.failures} event(s), the "
                           f"latest at position {s.last_failed_position}: {s.last_error}")
        if s.lag_seconds > max_lag_seconds:
            reasons.append(f"read model {s.name!r} is {s.lag_seconds:.0f} s behind "
                           f"(more than {max_lag_seconds:g} s)")
    return reasons


def wait_until(
    done: Callable[[], bool], timeout: float = MAX_WAIT_SECONDS, poll: float = POLL_SECONDS
) -> bool:
    """Ask ``done`` every ``poll`` seconds until it is true (True) or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while not done():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(poll, remaining))
    return True
