"""One read model's batches: folded exactly once, resumable (rebuilds, catch-ups, tests).

Exactly once: each batch's row changes and the projection's new position are written in ONE
transaction (the position through eventsourcing's ``PostgresTrackingRecorder``), so after a
crash the table and the position agree, and the next batch starts right after the position.

Several processes: each batch transaction first takes ``pg_try_advisory_xact_lock`` for its
projection and then reads the position ``FOR UPDATE``; a runner that does not get the lock skips
the batch. The lock lives exactly as long as the transaction (nothing to lose when a
connection drops), and the position is always read under it, so two processes never apply the
same events. The tracking upsert rejects any position that does not move forward (backstop).
A rebuild holds the same key as a session lock: live runners pause until it is done. The live
process folds every model in one transaction a round the same way (``projections/follower.py``).
A catch-up waits for the lock instead of skipping: a batch another folder holds is not the end
of the log, so it returns only once the model has folded the log (whoever folded it).

An event a projection cannot fold is recorded and passed over (``projections/isolating.py``),
so one bad event never holds a read model back; the database being away is retried instead.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from eventsourcing.persistence import Mapper, Notification, Tracking
from eventsourcing.postgres import (
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresTrackingRecorder,
)
from eventsourcing.utils import TopicError
from psycopg import Cursor
from psycopg.rows import DictRow

from infrastructure.database_errors import unreachable
from infrastructure.migrations import Migration
from projections.failures import (
    FAILURES_MIGRATION,
    ProjectionFailure,
    about_the_event,
    describe,
    log_failure,
    record_failure,
)
from projections.isolating import fold_isolating
from projections.shared_log import BATCH_SIZE, SharedLog

log = structlog.get_logger(__name__)

TRACKING_TABLE = "duecall_projection_tracking"


@dataclass(frozen=True)
class LogEvent:
    """One decoded event with its topic and its position in the notification log."""

    topic: str
    event: Any
    position: int


class FoldError(RuntimeError):
    """A batch failed for a reason that is neither its events nor the database being away."""

    def __init__(self, projection: str, first: int, last: int, error: BaseException) -> None:
        super().__init__(f"read model {projection!r}: folding the events at positions {first} "
                         f"to {last} failed: {describe(error)}")
        self.projection = projection


class Projection(Protocol):
    name: str
    topics: frozenset[str]
    tables: tuple[str, ...]  # emptied by a rebuild
    migrations: Sequence[Migration]

    def fold(self, curs: Cursor[DictRow], events: Sequence[LogEvent]) -> None: ...


def lock_key(projection_name: str) -> str:
    return f"duecall_projection:{projection_name}"


class ProjectionRunner:
    def __init__(
        self,
        projection: Projection,
        datastore: PostgresDatastore,
        events: PostgresApplicationRecorder,
        mapper: Mapper[Any],
        batch_size: int = BATCH_SIZE,
        shared: SharedLog | None = None,
    ) -> None:
        """``shared``: the log as the process's other runners read it (else this runner's own)."""
        self.projection = projection
        self._datastore = datastore
        self._log = shared or SharedLog(events, mapper)
        self._batch_size = batch_size
        self._tracking = PostgresTrackingRecorder(datastore, tracking_table_name=TRACKING_TABLE)

    @property
    def name(self) -> str:
        return self.projection.name

    def run_batch(self, *, locked: bool = False, wait: bool = False) -> int | None:
        """Fold the next batch; the number of events read, or None if another runner has it
        (``wait``: wait for that runner's batch to commit instead, then fold the next).

        A batch that fails for the events it carries is folded again, passing over (and
        recording) the events that cannot be folded. Any other error propagates with the batch
        undone: the database away as it was raised (the caller retries), the rest as a
        ``FoldError`` naming the batch."""
        try:
            return self._batch(locked=locked, wait=wait, isolating=False)
        except Exception as error:
            if isinstance(error, FoldError) or not about_the_event(error):
                raise
            log.warning("projection_batch_failed", projection=self.name, error=describe(error))
        return self._batch(locked=locked, wait=wait, isolating=True)

    def _batch(self, *, locked: bool, wait: bool, isolating: bool) -> int | None:
        with self._datastore.transaction(commit=True) as curs:
            if not locked and not _lock(curs, self.name, wait=wait):
                return None
            position = read_position(curs, self.name, for_update=True)
            notifications = self._log.notifications(position + 1, self._batch_size)
            if not notifications:
                return 0
            failures = self.fold(curs, notifications, isolating=isolating)
            for failure in failures:
                record_failure(curs, failure)
            self._tracking._insert_tracking(curs, Tracking(self.name, notifications[-1].id))
        for failure in failures:  # once committed
            log_failure(failure)
        return len(notifications)

    def fold(
        self, curs: Cursor[DictRow], notifications: Sequence[Notification], *, isolating: bool
    ) -> list[ProjectionFailure]:
        """Fold one batch in the caller's transaction (position and failures are the caller's
        to write); the events passed over when ``isolating``. The database away propagates as
        it was raised, and so does an error about the events when not ``isolating``; any other
        error as a ``FoldError`` naming the batch."""
        try:
            if isolating:
                return fold_isolating(curs, self.projection, notifications, self._decode)
            self.projection.fold(curs, self._decode(notifications))
            return []
        except Exception as error:
            if unreachable(error) or (not isolating and about_the_event(error)):
                raise
            first, last = notifications[0].id, notifications[-1].id
            raise FoldError(self.name, first, last, error) from error

    def catch_up(self, progress: Callable[[int], None], *, locked: bool = False) -> None:
        """Run batches until the log has no more events for this projection. A batch another
        folder holds (the live follower, another process) is waited for, not taken for the end
        of the log: on return the model has folded the log as far as the last read found it."""
        while processed := self.run_batch(locked=locked, wait=True):
            progress(processed)

    def _decode(self, notifications: Sequence[Notification]) -> list[LogEvent]:
        wanted = [n for n in notifications if n.topic in self.projection.topics]
        recorded = []
        for n, event in zip(wanted, self._log.events(wanted), strict=True):
            if isinstance(event, TopicError):
                log.warning("unknown_event_topic", projection=self.name, topic=n.topic)
            else:
                recorded.append(LogEvent(n.topic, event, n.id))
        return recorded


TRACKING_MIGRATIONS = [
    Migration(
        1,
        "create projection tracking",  # the shape of eventsourcing's single-row tracking table
        f"CREATE TABLE IF NOT EXISTS {TRACKING_TABLE} ("
        "application_name text PRIMARY KEY, notification_id bigint)",
    ),
    FAILURES_MIGRATION,
]


def ensure_tracking(curs: Cursor[DictRow], names: Sequence[str]) -> None:
    """A position row (0) for each projection, so batches can lock it ``FOR UPDATE``."""
    for name in names:
        curs.execute(
            f"INSERT INTO {TRACKING_TABLE} VALUES (%s, 0) ON CONFLICT DO NOTHING", (name,)
        )


def reset_position(curs: Cursor[DictRow], name: str) -> None:
    curs.execute(
        f"UPDATE {TRACKING_TABLE} SET notification_id = 0 WHERE application_name = %s", (name,)
    )


def read_position(curs: Cursor[DictRow], name: str, *, for_update: bool = False) -> int:
    lock = " FOR UPDATE" if for_update else ""
    curs.execute(
        f"SELECT notification_id FROM {TRACKING_TABLE} WHERE application_name = %s{lock}",
        (name,),
    )
    row = curs.fetchone()
    return int(row["notification_id"] or 0) if row else 0


def _lock(curs: Cursor[DictRow], name: str, *, wait: bool) -> bool:
    """The projection's lock for this transaction: whether it was free (``wait``: once it is)."""
    if wait:
        curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock_key(name),))
        return True
    curs.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s)) AS ok", (lock_key(name),))
    row = curs.fetchone()
    return bool(row and row["ok"])
