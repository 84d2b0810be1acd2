"""Folding a failed batch again, narrowed down to the events that cannot be folded.

Only after a batch failed for the events it carries (never on the normal path): the batch is
folded again in halves, each in a savepoint, down to the single events that still fail; those
become projection failures and every other event is folded, in log order, so the rows are the
ones the batch would have given without them. A bad event costs about 2·log2(batch) savepoints.
"""

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import Notification
from psycopg import Cursor
from psycopg.rows import DictRow

from projections.failures import ProjectionFailure, about_the_event, failure_of

if TYPE_CHECKING:  # the runner imports this module
    from projections.runner import LogEvent, Projection

Decode = Callable[[Sequence[Notification]], "list[LogEvent]"]


def fold_isolating(
    curs: Cursor[DictRow],
    projection: "Projection",
    notifications: Sequence[Notification],
    decode: Decode,
) -> list[ProjectionFailure]:
    """Fold ``notifications``, passing over those that fail; their failures, recorded by
    the caller. Errors not about the events (the database away) propagate."""
    wanted = [n for n in notifications if n.topic in projection.topics]
    failures: list[ProjectionFailure] = []
    _bisect(curs, projection, wanted, decode, failures)
    return failures


def _bisect(
    curs: Cursor[DictRow],
    projection: "Projection",
    notifications: Sequence[Notification],
    decode: Decode,
    failures: list[ProjectionFailure],
) -> None:
    if not notifications:
        return
    try:
        with curs.connection.transaction():  # a savepoint: a failure undoes only this part
            projection.fold(curs, decode(notifications))
    except Exception as error:
        if not about_the_event(error):
            raise
        if len(notifications) == 1:
            failures.append(_failure(projection.name, notifications[0], decode, error))
            return
        middle = len(notifications) // 2
        _bisect(curs, projection, notifications[:middle], decode, failures)
        _bisect(curs, projection, notifications[middle:], decode, failures)


def _failure(
    name: str, notification: Notification, decode: Decode, error: BaseException
) -> ProjectionFailure:
    event: Any = None
    try:
        decoded = decode([notification])
        event = decoded[0].event if decoded else None
    except Exception:  # undecodable: recorded without its tenant
        event = None
    originator = UUID(str(notification.originator_id))
    return failure_of(name, notification.topic, notification.id, originator, event, error)
