"""The notification log as the runners of one process read it (see ``SharedLog``)."""

import bisect
import itertools
import threading
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from eventsourcing.persistence import Mapper, Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import TopicError
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row

from infrastructure.log_rows import log_select, notifications_of

BATCH_SIZE = 1000


class SharedLog:
    """The notification log as the runners of one process read it: each stretch read once,
    each event decoded once.

    The projections follow the same stretch of the log a few milliseconds apart; reading and
    decoding it once per runner built the same rows and events four times. The log is
    immutable and its positions are
    committed in order (the events table's lock), so a stretch read a moment ago is what a read
    now returns, up to its end: a runner whose position falls inside the last stretches read
    gets the rest of one (a shorter batch), and only a position past them reads again. Bounded:
    a few stretches and ``capacity`` decoded events (the oldest quarter goes when full).
    """

    STRETCHES = 4

    def __init__(
        self,
        events: PostgresApplicationRecorder,
        mapper: Mapper[Any],
        capacity: int = 8 * BATCH_SIZE,
    ) -> None:
        self._events = events
        self._mapper = mapper
        self._capacity = capacity
        self._stretches: list[tuple[list[int], Sequence[Notification]]] = []  # newest last
        self._decoded: dict[int, Any] = {}
        self._reading = threading.Lock()  # one read at a time: the others wait and share it
        self._lock = threading.Lock()

    def notifications(self, start: int, limit: int) -> Sequence[Notification]:
        """Up to ``limit`` notifications from position ``start`` on (fewer: the rest of a
        stretch read earlier, or the head of the log)."""
        with self._reading:
            for ids, read in reversed(self._stretches):
                if ids[0] <= start <= ids[-1]:
                    first = bisect.bisect_left(ids, start)
                    return read[first : first + limit]
            return self._read(start, limit)

    def read(
        self, start: int, limit: int, curs: Cursor[DictRow] | None = None
    ) -> Sequence[Notification]:
        """Up to ``limit`` notifications from position ``start`` on, read from the log now
        (never from a stretch read earlier: fewer than ``limit`` is the head of the log); on
        ``curs``, in its transaction, if given."""
        with self._reading:
            return self._read(start, limit, curs)

    def _read(
        self, start: int, limit: int, curs: Cursor[DictRow] | None = None
    ) -> Sequence[Notification]:
        stretch: Sequence[Notification]
        if curs is None:
            stretch = self._events.select_notifications(start=start, limit=limit)
        else:
            with curs.connection.cursor(row_factory=tuple_row) as rows:  # in curs's transaction
                rows.execute(self._select, (start, limit))
                stretch = notifications_of(rows.fetchall())
        if stretch:
            self._stretches = [*self._stretches[1 - self.STRETCHES :],
                               ([n.id for n in stretch], stretch)]
        return stretch

    @cached_property
    def _select(self) -> bytes:
        return log_select(self._events.datastore.schema, self._events.events_table_name)

    def events(self, notifications: Sequence[Notification]) -> list[Any]:
        """The notifications' domain events, in order (for a topic no class has, the
        ``TopicError`` in its place), each decoded once. A batch is decoded under one lock:
        runners at the same stretch wait for it instead of decoding it again (decoding holds
        the GIL anyway), and take the lock once a batch, not twice an event (contended by
        seven catch-up threads, the lock was 14 % of the process's samples in a burst)."""
        with self._lock:
            found = {n.id: self._decoded[n.id] for n in notifications if n.id in self._decoded}
            missing = [n for n in notifications if n.id not in found]
            excess = len(self._decoded) + len(missing) - self._capacity
            if excess > 0:  # the oldest go, at least a quarter at a time
                dropped = max(excess, self._capacity // 4)
                for oldest in list(itertools.islice(self._decoded, dropped)):
                    del self._decoded[oldest]
            for notification in missing:
                event: Any
                try:
                    event = self._mapper.to_domain_event(notification)
                except TopicError as error:
                    event = error
                self._decoded[notification.id] = found[notification.id] = event
            return [found[n.id] for n in notifications]
