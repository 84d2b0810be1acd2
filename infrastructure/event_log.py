"""The event log as recorded, from Postgres: rows of ``duecall_events`` with their positions,
hash-chain links and tenants (``duecall_event_hashes``), decoded without upcasting.

A tenant's stream is read in pages of ``PAGE_SIZE`` through the index on (tenant, position),
one short transaction per page, so an export holds one page in memory whatever its size.
The time window is turned into a position range first (``recorded_at`` is taken inside the
events table's write lock, once per insert, so it never decreases as the position grows),
then applied exactly per row.
"""

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Mapper
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.rows import DictRow

from application.audit import RecordedEvent, TimeWindow, VersionPage
from infrastructure.event_hashes import HASHES_TABLE
from infrastructure.schema import EVENTS_TABLE

PAGE_SIZE = 500
_COLUMNS = (
    "e.notification_id, e.originator_id, e.originator_version, e.topic, e.state, "
    "h.recorded_at, h.hash"
)
_EVENTS = (
    f"SELECT {_COLUMNS} FROM {EVENTS_TABLE} e LEFT JOIN {HASHES_TABLE} h "
    "USING (originator_id, originator_version) "
)
_OF_AGGREGATES = f"{_EVENTS}WHERE e.originator_id = ANY(%s) ORDER BY e.notification_id"
# one aggregate's page, through the events' primary key (originator_id, originator_version)
_PAGE_AFTER = (
    f"{_EVENTS}WHERE e.originator_id = %s AND e.originator_version > %s "
    "ORDER BY e.originator_version LIMIT %s"
)
_PAGE_BEFORE = (
    f"{_EVENTS}WHERE e.originator_id = %s AND e.originator_version < %s "
    "ORDER BY e.originator_version DESC LIMIT %s"
)
_PAST_LAST_VERSION = 2**31  # above any version (an integer column): a page from the end
_TENANT_PAGE = (
    f"SELECT {_COLUMNS} FROM {HASHES_TABLE} h JOIN {EVENTS_TABLE} e "
    "USING (originator_id, originator_version) "
    "WHERE h.tenant_id = %s AND h.notification_id > %s AND h.notification_id <= %s "
    "AND h.recorded_at >= %s AND h.recorded_at < %s "
    "ORDER BY h.notification_id LIMIT %s"
)
_FIRST_FROM = (
    f"SELECT notification_id FROM {HASHES_TABLE} WHERE tenant_id = %s AND recorded_at >= %s "
    "ORDER BY recorded_at, notification_id LIMIT 1"
)
_LAST_BEFORE = (
    f"SELECT notification_id FROM {HASHES_TABLE} WHERE tenant_id = %s AND recorded_at < %s "
    "ORDER BY recorded_at DESC, notification_id DESC LIMIT 1"
)
_HEAD = f"SELECT max(notification_id) AS head FROM {HASHES_TABLE} WHERE tenant_id = %s"
_NEVER, _FOREVER = "-infinity", "infinity"


class PostgresEventLog:
    def __init__(self, datastore: PostgresDatastore, mapper: Mapper[Any]) -> None:
        self._datastore = datastore
        self._mapper = mapper

    @classmethod
    def of(cls, app: Application[Any]) -> "PostgresEventLog":
        if not isinstance(app.recorder, PostgresApplicationRecorder):
            raise TypeError("the event log needs the PostgreSQL application recorder")
        return cls(app.recorder.datastore, app.mapper)

    def events_of(self, originator_ids: Sequence[UUID]) -> list[RecordedEvent]:
        with self._datastore.transaction(commit=False) as curs:
            curs.execute(_OF_AGGREGATES, (list(originator_ids),))
            return [self._decode(row) for row in curs.fetchall()]

    def page_of(self, originator_id: UUID, page: VersionPage) -> list[RecordedEvent]:
        """One aggregate's events in the page: a bounded read, by version."""
        cursor = page.cursor
        if page.newest_first:
            query, cursor = _PAGE_BEFORE, _PAST_LAST_VERSION if cursor is None else cursor
        else:
            query, cursor = _PAGE_AFTER, 0 if cursor is None else cursor
        with self._datastore.transaction(commit=False) as curs:
            curs.execute(query, (originator_id, cursor, page.limit))
            return [self._decode(row) for row in curs.fetchall()]

    def tenant_stream(
        self, tenant_id: str, after: int, window: TimeWindow, page_size: int = PAGE_SIZE
    ) -> Iterator[RecordedEvent]:
        position, last = self._positions(tenant_id, after, window)
        start, end = window.start or _NEVER, window.end or _FOREVER
        while position < last:
            with self._datastore.transaction(commit=False) as curs:
                curs.execute(_TENANT_PAGE, (tenant_id, position, last, start, end, page_size))
                rows = curs.fetchall()
            yield from (self._decode(row) for row in rows)
            if len(rows) < page_size:
                return
            position = int(rows[-1]["notification_id"])

    def _positions(self, tenant_id: str, after: int, window: TimeWindow) -> tuple[int, int]:
        """The position range (first, last] that holds the window's events, as of now."""
        with self._datastore.transaction(commit=False) as curs:
            first, last = after, None
            if window.start is not None:
                curs.execute(_FIRST_FROM, (tenant_id, window.start))
                row = curs.fetchone()
                first = max(after, int(row["notification_id"]) - 1) if row else -1
            if window.end is not None:
                curs.execute(_LAST_BEFORE, (tenant_id, window.end))
                row = curs.fetchone()
                last = int(row["notification_id"]) if row else None
            else:
                curs.execute(_HEAD, (tenant_id,))
                row = curs.fetchone()
                last = int(row["head"]) if row and row["head"] is not None else None
        return (first, last) if first >= 0 and last is not None else (0, 0)

    def _decode(self, row: DictRow) -> RecordedEvent:
        state = self._decode_state(bytes(row["state"]))
        timestamp = state.pop("timestamp", None)
        return RecordedEvent(
            position=int(row["notification_id"]),
            originator_id=row["originator_id"],
            originator_version=int(row["originator_version"]),
            topic=str(row["topic"]),
            timestamp=timestamp if isinstance(timestamp, datetime) else None,
            recorded_at=row["recorded_at"],
            schema_version=int(state.pop("class_version", 1)),
            payload=state,
            hash=bytes(row["hash"]).hex() if row["hash"] is not None else None,
        )

    def _decode_state(self, state: bytes) -> dict[str, Any]:
        """The state as the mapper stored it: deciphered, decompressed, decoded; not upcast."""
        if self._mapper.cipher:
            state = self._mapper.cipher.decrypt(state)
        if self._mapper.compressor:
            state = self._mapper.compressor.decompress(state)
        decoded: dict[str, Any] = self._mapper.transcoder.decode(state)
        return decoded
