"""Commands that meet a write conflict with a worker: tried again from fresh state.

A user's command (pause, cancel, reset a circuit, ...) loads an aggregate that a worker may
change before the command saves it; optimistic concurrency then refuses the save
(``IntegrityError``: the version is taken). The command is applied again to the aggregate as
now recorded, a few times, and only then reported as a conflict (→ 409, never a 500).
"""

import random
import time
from collections.abc import Callable
from typing import TypeVar

import structlog
from eventsourcing.persistence import IntegrityError

log = structlog.get_logger(__name__)

T = TypeVar("T")
COMMAND_ATTEMPTS = 4


class ConcurrentUpdateError(Exception):
    """The aggregate kept changing under the command: the caller may try again (→ 409)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} was changed concurrently by another writer; try again")


def retry_on_conflict(
    command: Callable[[], T], what: str, attempts: int = COMMAND_ATTEMPTS
) -> T:
    """``command()`` (which must get the aggregate itself, apply, save); after a write
    conflict, again, up to ``attempts`` times in all."""
    for attempt in range(1, attempts):
        try:
            return command()
        except IntegrityError as error:
            log.info("command_conflict", what=what, attempt=attempt, error=str(error))
            time.sleep(random.uniform(0, 0.01 * attempt))  # let the other writer finish
    try:
        return command()
    except IntegrityError as error:
        log.warning("command_conflict_left_over", what=what, attempts=attempts)
        raise ConcurrentUpdateError(what) from error
