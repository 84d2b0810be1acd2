"""The application recorder: a transaction's events with what else it writes, one statement.

``Application.save(*aggregates, effects=...)`` passes its keywords to ``insert_events``
(``application.recording.record`` builds ``effects``: ``TransactionEffects``). Instead of
eventsourcing's pipelined insert (begin, lock, notify, insert, sync, commit: several round trips
and psycopg's pipeline machinery in Python), the events and their effects go to one PL/pgSQL
function (``duecall_record``, infrastructure/schema.py) as one array per column, sent binary,
on an autocommit connection: one statement, one transaction, one round trip. So the messages a
transaction consumes disappear, and the messages it publishes appear, if and only if its events
are recorded; likewise its Idempotency-Keys and registry rows. The stored rows are those
eventsourcing would store (a test pins the function against eventsourcing's insert).
"""

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import InterfaceError, Notification, OperationalError, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
)
from psycopg.sql import SQL, Identifier
from psycopg.types.json import Jsonb

from application.outbox import OutboxMessage
from application.recording import NO_EFFECTS, TransactionEffects
from infrastructure.database import no_connection
from infrastructure.schema import RECORD_FUNCTION, SLOT_FREED

DEFAULT_LEASE_SECONDS = 30.0
RETRIES = 2  # after a connection broke mid-statement (not when none could be had)
RETRY_WAIT_SECONDS = 0.2
T = TypeVar("T")

_RECORD = SQL(
    "SELECT n FROM {}(%s, %b::bigint[], %b::bigint[], %b::text[], %b::text[], %b::uuid[], "
    "%b::integer[], %b::timestamptz[], %b::timestamptz[], %b::double precision[], %b::text[], "
    "%b::jsonb[], %b::integer[], %b::text[], %b::text[], %b::text[], %b::uuid[], %b::text[], "
    "%b::text[], %b::text[], %b::uuid[], %b::text[], %b::uuid[], %b::bigint[], %b::text[], "
    "%b::bytea[]) AS n"
).format(Identifier(RECORD_FUNCTION)).as_bytes(None)  # bytes: psycopg caches its parsing


class OutboxRecorder(PostgresApplicationRecorder):
    # eventsourcing retries these 10 times, 0.2 s apart, on OperationalError/InterfaceError.
    # While the database is away each try first waits the pool's whole timeout for a
    # connection, so a request would hang for minutes before failing. Here: a few quick retries
    # when a connection broke mid-statement, none when no connection could be had, so callers
    # learn at once (the API answers 503; workers back off in their own loops).
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        effects: TransactionEffects = kwargs.get("effects") or NO_EFFECTS
        return _few_retries(lambda: self._record(stored_events, effects))

    def _record(
        self, stored_events: Sequence[StoredEvent], effects: TransactionEffects
    ) -> list[int]:
        """The events' notification ids, in order, once recorded with their effects."""
        if not stored_events and not effects:
            return []
        params = (
            f"{self.datastore.lock_timeout}s",
            *_effect_columns(effects),
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
        )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(_RECORD, params, prepare=True)
            return [row["n"] for row in curs.fetchall()]

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        select = _undecorated(PostgresAggregateRecorder.select_events)
        result: Sequence[StoredEvent] = _few_retries(
            lambda: select(self, originator_id, gt=gt, lte=lte, desc=desc, limit=limit)
        )
        return result

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        select = _undecorated(PostgresApplicationRecorder.select_notifications)
        result: Sequence[Notification] = _few_retries(
            lambda: select(
                self, start, limit, stop, topics, inclusive_of_start=inclusive_of_start
            )
        )
        return result

    def max_notification_id(self) -> int | None:
        select = _undecorated(PostgresApplicationRecorder.max_notification_id)
        result: int | None = _few_retries(lambda: select(self))
        return result

    def select_events_of(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        """Every event of these aggregates in one query (the primary key serves it)."""
        statement = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
        ).format(
            schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name)
        )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (list(originator_ids),), prepare=True)
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]


def _effect_columns(effects: TransactionEffects) -> tuple[Any, ...]:
    """The function's parameters for what the transaction writes besides its events."""
    outbox = effects.outbox
    rows = [_row(m) for m in outbox.publish]
    columns: list[list[Any]] = [list(c) for c in zip(*rows, strict=True)] or [[]] * 11
    notify = sorted({m.kind for m in outbox.publish if m.id is None})
    if outbox.frees_slots:
        notify.append(SLOT_FREED)
    keys, circuits = effects.idempotency, effects.circuits
    return (
        list(outbox.consume),
        *columns,
        notify,
        [k.tenant_id for k in keys],
        [k.key for k in keys],
        [k.service_call_id for k in keys],
        [k.request_hash for k in keys],
        [c.tenant_id for c in circuits],
        [c.host for c in circuits],
        [c.circuit_id for c in circuits],
        list(effects.tenants),
    )


def _row(m: OutboxMessage) -> tuple[Any, ...]:
    """An outbox row: id (0: fresh, numbered by the sequence), the columns, claims."""
    return (
        m.id or 0,
        m.kind,
        m.tenant_id,
        m.service_call_id,
        m.attempt,
        m.due_at or m.available_at,
        m.available_at,
        float(m.lease_seconds or DEFAULT_LEASE_SECONDS),  # one type per column array
        m.host,
        Jsonb(m.payload),
        m.claims if m.id is not None else 0,
    )


def _undecorated(method: Any) -> Callable[..., Any]:
    """The recorder method without eventsourcing's retry decorator."""
    return getattr(method, "__wrapped__", method)  # type: ignore[no-any-return]


def _few_retries(operation: Callable[[], T]) -> T:
    for attempt in range(RETRIES + 1):
        try:
            return operation()
        except (OperationalError, InterfaceError) as error:
            if attempt == RETRIES or no_connection(error):
                raise
            time.sleep(RETRY_WAIT_SECONDS)
    raise AssertionError("unreachable")
