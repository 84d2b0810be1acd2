"""Many messages per transaction, and what to do when a batch meets a write conflict."""

import random
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import structlog
from eventsourcing.persistence import IntegrityError

log = structlog.get_logger(__name__)

T = TypeVar("T")
BATCH_ATTEMPTS = 4  # the whole batch, from fresh state, before going one by one
ITEM_ATTEMPTS = 6


def in_batch_or_one_by_one(
    handle: Callable[[Sequence[T]], None],
    items: Sequence[T],
    fresh: Callable[[T], T] = lambda item: item,
) -> list[T]:
    """Handle all items in one transaction; after a conflict, again from fresh state, and
    then each on its own. Returns the items that still conflicted (for the caller to hand
    back, or to try again later; the others are handled).

    A conflict (another writer recorded a newer version of one aggregate first) rolls back the
    whole batch. Handling the batch again from freshly loaded state usually goes through: the
    items another writer handled meanwhile record nothing. Aggregates that many items share (a
    host's circuit, which most outcomes for that host update) conflict while other workers
    write them, so the batch is tried ``BATCH_ATTEMPTS`` times, with a random pause, before it
    goes one by one (``ITEM_ATTEMPTS`` tries each). Going one by one first would turn one
    transaction into hundreds, all contending for the same aggregate.
    """
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            handle(items if attempt == 1 else [fresh(item) for item in items])
            return []
        except IntegrityError:
            if len(items) == 1:
                break
            time.sleep(random.uniform(0, 0.02 * attempt))  # let the other writers finish
    if len(items) > 1:
        log.info("batch_conflict_retrying_one_by_one", size=len(items))
    return [item for item in items if not _alone(handle, item, fresh)]


def _alone(handle: Callable[[Sequence[T]], None], item: T, fresh: Callable[[T], T]) -> bool:
    for attempt in range(1, ITEM_ATTEMPTS + 1):
        try:
            handle([fresh(item)])
            return True
        except IntegrityError as error:
            if attempt == ITEM_ATTEMPTS:
                log.warning("conflict_left_over", error=str(error), attempts=attempt)
                return False
            time.sleep(random.uniform(0, 0.02 * attempt))  # let the other writers finish
    return False
