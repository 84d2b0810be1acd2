"""A worker process's start and stop: wait for the database, stop within the shutdown timeout.

Start: a worker started while the database is away (restarting, say) waits for it, retrying
with backoff, instead of exiting. Stop (SIGTERM or SIGINT): no new work is claimed, attempts in
flight get most of ``DUECALL_SHUTDOWN_TIMEOUT_SECONDS`` to finish, what is still running is
handed back, and the process exits within that timeout even if a step hangs (its leases end
and another worker repeats the work).
"""

import threading
import time

import structlog

from application.supervision import Backoff
from infrastructure.container import Container
from infrastructure.database import DATABASE_UNAVAILABLE
from infrastructure.settings import Settings

log = structlog.get_logger(__name__)

MAX_BACKOFF_SECONDS = 5.0


def build_when_reachable(settings: Settings, stop: threading.Event) -> Container | None:
    """The container, once the database answers; None if stopped while waiting."""
    backoff = Backoff(first=0.2, cap=MAX_BACKOFF_SECONDS)
    while not stop.is_set():
        try:
            return Container.build(settings)
        except DATABASE_UNAVAILABLE as error:
            wait = backoff.next()
            log.warning("database_unreachable_at_start", error=str(error), retry_in=wait)
            stop.wait(wait)
    return None


def shut_down(container: Container, timeout: float) -> float:
    """Close the container (workers, read models, pools) within ``timeout`` seconds (and a
    moment for the pools); the seconds it took."""
    began = time.monotonic()
    closing = threading.Thread(target=container.close, name="duecall-shutdown", daemon=True)
    closing.start()
    closing.join(timeout + 2.0)
    seconds = round(time.monotonic() - began, 3)
    if closing.is_alive():
        log.warning("shutdown_timed_out", seconds=seconds, timeout=timeout)
    else:
        log.info("shutdown_complete", seconds=seconds, timeout=timeout)
    return seconds
