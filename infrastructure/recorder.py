"""The application recorder with the transaction-effects hook.

eventsourcing's ``PostgresApplicationRecorder.insert_events`` calls ``_insert_events`` inside
its insert transaction (same connection, same pipeline) before it locks the events table and
inserts the events; ``Application.save(*aggregates, effects=...)`` passes the keyword through
(``application.recording.record`` builds it: ``TransactionEffects``). So the messages a
transaction consumes disappear, and the messages it publishes appear, if and only if its
events are recorded; likewise its Idempotency-Keys and registry rows.
"""

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import InterfaceError, Notification, OperationalError, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
)
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier
from psycopg.types.json import Jsonb

from application.outbox import OutboxChanges, OutboxMessage
from application.recording import TransactionEffects
from infrastructure import pipeline_flush
from infrastructure.database import no_connection
from infrastructure.schema import (
    CIRCUITS_TABLE,
    IDEMPOTENCY_TABLE,
    OUTBOX_CHANNEL,
    OUTBOX_TABLE,
    SLOT_FREED,
    TENANTS_TABLE,
)

DEFAULT_LEASE_SECONDS = 30.0
RETRIES = 2  # after a connection broke mid-statement (not when none could be had)
RETRY_WAIT_SECONDS = 0.2
T = TypeVar("T")

pipeline_flush.install()  # else a large event hangs the pipelined insert (see the module)

_DELETE = f"DELETE FROM {OUTBOX_TABLE} WHERE id = ANY(%s)"
_INSERT = (
    f"INSERT INTO {OUTBOX_TABLE} (kind, tenant_id, service_call_id, attempt, due_at, "
    "available_at, lease_seconds, host, payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
# The same rows, in the same order (so the same ids), as one statement: an array per column,
# sent binary (as text, psycopg escapes every JSON payload in Python: slower than executemany)
_INSERT_MANY = (
    f"INSERT INTO {OUTBOX_TABLE} (kind, tenant_id, service_call_id, attempt, due_at, "
    "available_at, lease_seconds, host, payload) SELECT * FROM unnest(%b::text[], %b::text[], "
    "%b::uuid[], %b::integer[], %b::timestamptz[], %b::timestamptz[], "
    "%b::double precision[], %b::text[], %b::jsonb[])"
)
# A message already leased to the worker that publishes it (``application.outbox.leased_here``)
_INSERT_LEASED = (
    f"INSERT INTO {OUTBOX_TABLE} (kind, tenant_id, service_call_id, attempt, due_at, "
    "available_at, lease_seconds, host, payload, id, claims) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_REGISTER_CIRCUIT = (
    f"INSERT INTO {CIRCUITS_TABLE} (tenant_id, host, circuit_id) VALUES (%s, %s, %s) "
    "ON CONFLICT DO NOTHING"
)
_REGISTER_TENANT = f"INSERT INTO {TENANTS_TABLE} (name) VALUES (%s) ON CONFLICT DO NOTHING"
_INSERT_KEYS = (
    f"INSERT INTO {IDEMPOTENCY_TABLE} (tenant_id, key, service_call_id, request_hash) "
    "SELECT * FROM unnest(%b::text[], %b::text[], %b::uuid[], %b::text[])"
)


class OutboxRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self._insert_columns_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(
            schema=Identifier(datastore.schema),
            table=Identifier(self.events_table_name),
            id_type=Identifier(datastore.originator_id_type),
        )

    # eventsourcing retries these 10 times, 0.2 s apart, on OperationalError/InterfaceError.
    # While the database is away each try first waits the pool's whole timeout for a
    # connection, so a request would hang for minutes before failing. Here: a few quick retries
    # when a connection broke mid-statement, none when no connection could be had, so callers
    # learn at once (the API answers 503; workers back off in their own loops).
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        insert = _undecorated(PostgresApplicationRecorder.insert_events)
        result: Sequence[int] | None = _few_retries(lambda: insert(self, stored_events, **kwargs))
        return result

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

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        effects: TransactionEffects | None = kwargs.get("effects")
        if effects is not None:
            write_effects(curs, effects)
        super()._insert_events(curs, stored_events, **kwargs)

    def _insert_stored_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        """eventsourcing's insert (lock the table, notify, insert), the same rows in the same
        order, but sent as one binary array per column instead of an array of its composite
        type: psycopg dumps that composite array in Python, as escaped text (bytea as hex,
        quoted twice), several times slower. The stored bytes are unchanged (a test pins
        eventsourcing's steps: tests/unit/test_library_contracts.py)."""
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self._insert_columns_statement,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
        )


def write_effects(curs: Cursor[DictRow], effects: TransactionEffects) -> None:
    """The rows the transaction writes besides its events."""
    keys = effects.idempotency
    if keys:  # a duplicate key fails the whole transaction; one statement for them all
        curs.execute(
            _INSERT_KEYS,
            (
                [k.tenant_id for k in keys],
                [k.key for k in keys],
                [k.service_call_id for k in keys],
                [k.request_hash for k in keys],
            ),
        )
    if effects.circuits:
        curs.executemany(
            _REGISTER_CIRCUIT, [(c.tenant_id, c.host, c.circuit_id) for c in effects.circuits]
        )
    if effects.tenants:  # a second registration fails on its events (the id is the name's)
        curs.executemany(_REGISTER_TENANT, [(name,) for name in effects.tenants])
    _write_outbox_changes(curs, effects.outbox)


def _write_outbox_changes(curs: Cursor[DictRow], changes: OutboxChanges) -> None:
    if changes.consume:
        curs.execute(_DELETE, (list(changes.consume),), prepare=True)
    fresh = [m for m in changes.publish if m.id is None]
    leased = [m for m in changes.publish if m.id is not None]
    if len(fresh) == 1:
        curs.execute(_INSERT, _row(fresh[0]))
    elif fresh:  # one statement, not one per row (a batch submit publishes 1,000)
        curs.execute(_INSERT_MANY, _columns(fresh))
    if leased:  # nobody else may claim these yet: no wake-up either
        curs.executemany(_INSERT_LEASED, [(*_row(m), m.id, m.claims) for m in leased])
    for kind in sorted({m.kind for m in fresh}):
        curs.execute("SELECT pg_notify(%s, %s)", (OUTBOX_CHANNEL, kind))
    if changes.frees_slots:
        curs.execute("SELECT pg_notify(%s, %s)", (OUTBOX_CHANNEL, SLOT_FREED))


def _row(m: OutboxMessage) -> tuple[Any, ...]:
    return (
        m.kind,
        m.tenant_id,
        m.service_call_id,
        m.attempt,
        m.due_at or m.available_at,
        m.available_at,
        float(m.lease_seconds or DEFAULT_LEASE_SECONDS),  # one type per column array
        m.host,
        Jsonb(m.payload),
    )


def _columns(messages: Sequence[OutboxMessage]) -> list[list[Any]]:
    """``_row`` of each message, transposed: one list per column."""
    return [list(column) for column in zip(*map(_row, messages), strict=True)]


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
