"""The live stream's view of the event log (``application.event_stream.EventFeed``).

Reads ``duecall_events`` after a position in notification order, joined to
``duecall_event_hashes`` for each event's tenant (recorded in the inserting transaction, so
every event has it), through the (tenant, position) index when one tenant's events are asked
for. Only streamed aggregates' states are fetched and decoded (as recorded, not upcast, like
the audit history: ``PostgresEventLog``); other rows only move the position on. An execution's
later events do not name their call: its first event (``Execution.Started``) does, and is
joined in.

A read that comes back short is complete through the head of the log as it was just before
the read (writers commit in position order under the events table's lock), so a resuming
subscriber knows it has caught up even when the last events were another tenant's.

Waking: the events table's channel (the recorder NOTIFYs it in every insert transaction),
heard through the process's one listener (``infrastructure/notifications.py``) and passed to
the tail's event loop; while the listener reconnects, the tail polls.
"""

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Mapper
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.rows import DictRow

from application.event_stream import STREAMED_AGGREGATES, FeedPage, StreamEvent
from infrastructure.event_hashes import HASHES_TABLE
from infrastructure.event_log import PostgresEventLog
from infrastructure.notifications import Notifications
from infrastructure.schema import EVENTS_TABLE

_EXECUTION = "duecall:Execution.%%"
_COLUMNS = """
    e.notification_id, e.originator_id, e.originator_version, e.topic, h.tenant_id,
    h.recorded_at, h.hash,
    CASE WHEN e.topic LIKE ANY(%(streamed)s) THEN e.state END AS state,
    s.state AS first_state
"""
_FIRST_OF_EXECUTION = (
    f"LEFT JOIN {EVENTS_TABLE} s ON e.topic LIKE '{_EXECUTION}' AND e.originator_version > 1 "
    "AND s.originator_id = e.originator_id AND s.originator_version = 1"
)
_ALL_AFTER = f"""
SELECT {_COLUMNS} FROM {EVENTS_TABLE} e
LEFT JOIN {HASHES_TABLE} h USING (originator_id, originator_version)
{_FIRST_OF_EXECUTION}
WHERE e.notification_id > %(after)s ORDER BY e.notification_id LIMIT %(limit)s
"""
_TENANT_AFTER = f"""
SELECT {_COLUMNS} FROM {HASHES_TABLE} h
JOIN {EVENTS_TABLE} e USING (originator_id, originator_version)
{_FIRST_OF_EXECUTION}
WHERE h.tenant_id = %(tenant)s AND h.notification_id > %(after)s
ORDER BY h.notification_id LIMIT %(limit)s
"""
_HEAD = f"SELECT coalesce(max(notification_id), 0) AS head FROM {EVENTS_TABLE}"
_STREAMED = [f"duecall:{aggregate.__name__}.%" for aggregate in STREAMED_AGGREGATES]


class PostgresEventFeed(PostgresEventLog):
    def __init__(
        self,
        datastore: PostgresDatastore,
        mapper: Mapper[Any],
        notifications: Notifications,
        channel: str,
    ) -> None:
        super().__init__(datastore, mapper)
        self._notifications = notifications
        self._channel = channel
        self._woken: asyncio.Event | None = None  # set (on its loop) by the channel's notifies
        self._unsubscribe: Callable[[], None] | None = None

    @classmethod
    def of_app(cls, app: Application[Any], notifications: Notifications) -> "PostgresEventFeed":
        """The feed of the application's events, woken through ``notifications`` (the
        process's one listener)."""
        recorder = app.recorder
        if not isinstance(recorder, PostgresApplicationRecorder):
            raise TypeError("the event feed needs the PostgreSQL application recorder")
        return cls(recorder.datastore, app.mapper, notifications, recorder.channel_name)

    def head(self) -> int:
        with self._datastore.transaction(commit=False) as curs:
            curs.execute(_HEAD)
            row = curs.fetchone()
        return int(row["head"]) if row else 0

    def read_after(self, position: int, limit: int, tenant_id: str | None = None) -> FeedPage:
        params = {"streamed": _STREAMED, "after": position, "limit": limit, "tenant": tenant_id}
        with self._datastore.transaction(commit=False) as curs:
            curs.execute(_HEAD)  # first: the page below sees at least this much of the log
            head_row = curs.fetchone()
            curs.execute(_ALL_AFTER if tenant_id is None else _TENANT_AFTER, params)
            rows = curs.fetchall()
        events = [event for row in rows if (event := self._stream_event(row)) is not None]
        last = int(rows[-1]["notification_id"]) if rows else position
        if len(rows) >= limit:
            return FeedPage(events, last, more=True)
        head = int(head_row["head"]) if head_row else 0
        return FeedPage(events, max(position, last, head), more=False)

    def _stream_event(self, row: DictRow) -> StreamEvent | None:
        if row["state"] is None or row["tenant_id"] is None:
            return None  # not a streamed aggregate, or no tenant's
        recorded = self._decode(row)
        return StreamEvent(recorded, str(row["tenant_id"]), self._call_of(row, recorded.payload))

    def _call_of(self, row: DictRow, payload: dict[str, Any]) -> UUID | None:
        topic = str(row["topic"])
        if topic.startswith("duecall:ServiceCall."):
            originator: UUID = row["originator_id"]
            return originator
        if not topic.startswith("duecall:Execution."):
            return None
        first = payload if row["first_state"] is None else self._decode_state(
            bytes(row["first_state"])
        )
        call = first.get("service_call_id")
        return call if isinstance(call, UUID) else None

    async def wait_for_more(self, timeout: float) -> None:
        if self._woken is None:
            self._woken = self._subscribe(asyncio.get_running_loop())
            return  # events may have been recorded before the subscription: read again now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), timeout)
        self._woken.clear()

    def _subscribe(self, loop: asyncio.AbstractEventLoop) -> asyncio.Event:
        woken = asyncio.Event()

        def wake(_payload: str | None) -> None:  # on the listener's thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(woken.set)

        self._unsubscribe = self._notifications.subscribe(self._channel, wake)
        return woken

    async def aclose(self) -> None:
        unsubscribe, self._unsubscribe, self._woken = self._unsubscribe, None, None
        if unsubscribe is not None:
            unsubscribe()
