"""Many messages per transaction, and what to do when a batch meets a write conflict."""

from collections.abc import Callable, Sequence
from typing import TypeVar

import structlog
from eventsourcing.persistence import IntegrityError

log = structlog.get_logger(__name__)

T = TypeVar("T")


def in_batch_or_one_by_one(
    handle: Callable[[Sequence[T]], None],
    items: Sequence[T],
    fresh: Callable[[T], T] = lambda item: item,
) -> None:
    """Handle all items in one transaction; after a conflict, each on its own.

    A conflict (another writer recorded a newer version of one aggregate first) rolls back the
    whole batch. Handling each item alone, from freshly loaded state, lets the others through;
    the conflicting one then finds its work done and records nothing.
    """
    try:
        handle(items)
    except IntegrityError:
        if len(items) == 1:
            handle([fresh(items[0])])
            return
        log.info("batch_conflict_retrying_one_by_one", size=len(items))
        for item in items:
            try:
                handle([fresh(item)])
            except IntegrityError as error:
                log.warning("conflict_left_for_redelivery", error=str(error))
