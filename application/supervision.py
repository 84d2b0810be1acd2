"""Supervised loops: a step run until stopped, a failure logged and retried after a backoff.

``Backoff`` is the wait between failed tries: it starts at ``first``, doubles up to ``cap``
and goes back to ``first`` after a success. ``supervise`` runs a thread's loop with it;
``supervise_async`` the same for a task on an event loop (stopped by an ``asyncio.Event``
or by cancelling the task). A loop with its own error handling passes ``on_error`` (called
before the wait); a loop that does not fit (retry until done, a loop in a CLI) uses
``Backoff`` alone.
"""

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger(__name__)


@dataclass
class Backoff:
    first: float = 0.1
    cap: float = 5.0
    _wait: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._wait = self.first

    def next(self) -> float:
        """The wait before the next try (the one after waits twice as long, up to ``cap``)."""
        wait = self._wait
        self._wait = min(wait * 2, self.cap)
        return wait

    def reset(self) -> None:
        self._wait = self.first


def supervise(
    step: Callable[[], object],
    stopped: threading.Event,
    name: str,
    *,
    on_error: Callable[[Exception], None] | None = None,
    backoff: Backoff | None = None,
) -> None:
    """Run ``step`` until ``stopped`` is set. A step that raises is logged (``loop_failed``
    with ``name`` and the wait), handed to ``on_error``, and tried again after the backoff;
    one that returns resets the backoff."""
    backoff = backoff or Backoff()
    while not stopped.is_set():
        try:
            step()
        except Exception as error:
            wait = _failed(name, error, backoff, on_error)
            stopped.wait(wait)
        else:
            backoff.reset()


async def supervise_async(
    step: Callable[[], Awaitable[object]],
    stopped: asyncio.Event,
    name: str,
    *,
    on_error: Callable[[Exception], None] | None = None,
    backoff: Backoff | None = None,
) -> None:
    """``supervise`` for a task on an event loop (cancelling the task stops it too)."""
    backoff = backoff or Backoff()
    while not stopped.is_set():
        try:
            await step()
        except Exception as error:
            wait = _failed(name, error, backoff, on_error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), wait)
        else:
            backoff.reset()


def _failed(
    name: str,
    error: Exception,
    backoff: Backoff,
    on_error: Callable[[Exception], None] | None,
) -> float:
    wait = backoff.next()
    log.warning("loop_failed", loop=name, error=str(error) or type(error).__name__,
                retry_in=wait, exc_info=error)
    if on_error is not None:
        on_error(error)
    return wait
