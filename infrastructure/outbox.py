"""The transactional outbox in PostgreSQL: the recorder writes a transaction's events and
messages in one statement; the outbox port's claims lease the messages, woken by the outbox
channel's notifies (through the process's one listener, ``infrastructure/notifications.py``).

``Application.save(*aggregates, effects=...)`` passes its keywords to ``insert_events``
(``application.outbox.record`` builds ``effects``: ``TransactionEffects``). Instead of
eventsourcing's pipelined insert (begin, lock, notify, insert, sync, commit: several round trips
and psycopg's pipeline machinery in Python), the events and their effects go to one PL/pgSQL
function (``duecall_record``, infrastructure/schema.py) as one array per column, sent binary,
on an autocommit connection: one statement, one transaction, one round trip. So the messages a
transaction consumes disappear, and the messages it publishes appear, if and only if its events
are recorded; likewise its Idempotency-Keys and registry rows. The stored rows are those
eventsourcing would store: tests/unit/test_library_contracts.py pins the steps of its insert
that the function repeats, tests/integration/test_record_function.py what the function stores.

Over 300 lines on purpose: what the recorder writes and what the claims read are two halves of
one protocol (a message exists exactly when the events that caused it do, and is leased,
consumed or handed back by its id), best read together.
"""

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from eventsourcing.persistence import InterfaceError, Notification, OperationalError, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresFactory,
)
from psycopg.rows import dict_row, tuple_row
from psycopg.sql import SQL, Composed, Identifier
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from application.outbox import (
    EXECUTE,
    KINDS,
    NO_EFFECTS,
    START,
    Claimed,
    ClaimRead,
    OutboxMessage,
    TransactionEffects,
)
from infrastructure.database import no_connection
from infrastructure.log_rows import log_select, notifications_of, stored_events_of
from infrastructure.notifications import Notifications
from infrastructure.pool_checks import ping_if_idle
from infrastructure.schema import (
    CLAIM_STARTS_FUNCTION,
    EVENTS_TABLE,
    LEASE_HOLDER,
    OUTBOX_CHANNEL,
    OUTBOX_TABLE,
    RECORD_FUNCTION,
    SLOT_FREED,
    WORKER_SETTING,
)

DEFAULT_LEASE_SECONDS = 30.0
RETRIES = 2  # after a connection broke mid-statement (not when none could be had)
RETRY_WAIT_SECONDS = 0.2
T = TypeVar("T")

_RECORD = SQL(
    "SELECT n FROM {}(%s, %b::bigint[], %b::text[], "  # lock_timeout, consume, withdraw
    "%b::bigint[], %b::text[], %b::text[], %b::uuid[], "
    "%b::integer[], %b::timestamptz[], %b::timestamptz[], %b::double precision[], %b::text[], "
    "%b::jsonb[], %b::integer[], %b::text[], %b::text[], %b::text[], %b::uuid[], %b::text[], "
    "%b::text[], %b::text[], %b::uuid[], %b::text[], %b::uuid[], %b::bigint[], %b::text[], "
    "%b::bytea[]) AS n"
).format(Identifier(RECORD_FUNCTION)).as_bytes(None)  # bytes: psycopg caches its parsing


class SnapshotRecorder(PostgresAggregateRecorder):
    """Reads retried a few times (``_few_retries``), not the library's ten with a pool wait
    each: a request while the database is away answers 503 in seconds. The snapshot table's
    recorder (``EventStoreFactory``), and the base of the events table's."""

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


class EventStoreFactory(PostgresFactory):
    """eventsourcing's Postgres factory, its snapshot store on ``SnapshotRecorder``."""

    aggregate_recorder_class = SnapshotRecorder


class OutboxRecorder(SnapshotRecorder, PostgresApplicationRecorder):
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

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        if start is not None and stop is None and not topics and inclusive_of_start:
            return _few_retries(lambda: self._read_log(start, limit))  # the read models' read
        select = _undecorated(PostgresApplicationRecorder.select_notifications)
        result: Sequence[Notification] = _few_retries(
            lambda: select(
                self, start, limit, stop, topics, inclusive_of_start=inclusive_of_start
            )
        )
        return result

    def _read_log(self, start: int, limit: int) -> list[Notification]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._log_select, (start, limit), prepare=True)
            return notifications_of(curs.fetchall())

    @cached_property
    def _log_select(self) -> bytes:
        return log_select(self.datastore.schema, self.events_table_name)

    def max_notification_id(self) -> int | None:
        select = _undecorated(PostgresApplicationRecorder.max_notification_id)
        result: int | None = _few_retries(lambda: select(self))
        return result

    def select_events_of(
        self, originator_ids: Sequence[UUID], after: Sequence[int] | None = None
    ) -> list[StoredEvent]:
        """Every event of these aggregates in one query (the primary key serves it); with
        ``after``, only each one's events after the version at its position."""
        params: list[Any] = [list(originator_ids)]
        if after is None:
            where = "WHERE originator_id = ANY(%s)"
        else:
            where = (
                "JOIN unnest(%s::uuid[], %s::bigint[]) AS v(id, version) "
                "ON originator_id = v.id AND originator_version > v.version"
            )
            params.append(list(after))
        statement = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
            + where
            + " ORDER BY originator_id, originator_version"
        ).format(
            schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name)
        )
        return self._stored(statement, params)

    def select_latest_snapshots(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        """The newest snapshot of each of these aggregates that has one, in one query (the
        application's snapshot table, which the library names beside its events table)."""
        statement = SQL(
            "SELECT DISTINCT ON (originator_id) originator_id, originator_version, topic, state "
            "FROM {schema}.{table} WHERE originator_id = ANY(%s) "
            "ORDER BY originator_id, originator_version DESC"
        ).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name.removesuffix("_events") + "_snapshots"),
        )
        return self._stored(statement, [list(originator_ids)])

    def _stored(self, statement: Composed, params: list[Any]) -> list[StoredEvent]:
        """Rows of (originator_id, originator_version, topic, state), as tuples (see
        ``notifications_of``)."""
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, params, prepare=True)
            return stored_events_of(curs.fetchall())


def _effect_columns(effects: TransactionEffects) -> tuple[Any, ...]:
    """The function's parameters for what the transaction writes besides its events."""
    outbox = effects.outbox
    rows = [_row(m) for m in outbox.publish]
    columns = [list(c) for c in zip(*rows, strict=True)] or [[] for _ in range(_ROW_VALUES)]
    notify = sorted({m.kind for m in outbox.publish if m.id is None})
    if outbox.frees_slots:
        notify.append(SLOT_FREED)
    keys, circuits = effects.idempotency, effects.circuits
    return (
        list(outbox.consume),
        list(outbox.withdraw),
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


_ROW_VALUES = 11  # the values of an outbox row (``_row``): one array each when there are none


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


# Who wakes up when a kind is published.
_WAKES: dict[str, tuple[str, ...]] = {kind: (kind,) for kind in KINDS}

# A claimed message becomes available again when its lease ends: if the worker dies, another
# worker claims it then. The transaction that records its effects deletes it.
_CLAIM = f"""
WITH due AS (
    SELECT id FROM {OUTBOX_TABLE}
    WHERE kind = %(kind)s AND available_at <= now() + make_interval(secs => %(lookahead)s)
    ORDER BY available_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {OUTBOX_TABLE} AS o
SET available_at = greatest(o.available_at, now()) + make_interval(secs => o.lease_seconds),
    claims = o.claims + 1, worker_id = {LEASE_HOLDER}
FROM due WHERE o.id = due.id
RETURNING o.id, o.kind, o.tenant_id, o.service_call_id, o.attempt, o.due_at,
          o.available_at, o.lease_seconds, o.claims, o.host, o.payload
"""
# A schedule claim also says when the next unclaimed schedule message becomes available (the
# subquery sees the table as before the claim, so the claimed ones are left out by id).
_CLAIM_AND_NEXT = f"""
WITH claimed AS ({_CLAIM})
SELECT *, NULL::double precision AS next_seconds FROM claimed
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    extract(epoch FROM min(available_at) - now())::double precision
FROM {OUTBOX_TABLE}
WHERE kind = %(kind)s AND id NOT IN (SELECT id FROM claimed)
"""
_CLAIM_STARTS = f"SELECT * FROM {CLAIM_STARTS_FUNCTION}(%s, %s, %s, %s, %s)"  # schema.py
# Handing back (a worker stopping): available again at once, or at its due time if that is
# still ahead (a timer's held ``start`` message). Only claims still ours: same claim count.
_RELEASE = f"""
UPDATE {OUTBOX_TABLE} AS o
SET available_at = greatest(o.due_at, now()), worker_id = NULL
FROM unnest(%(ids)s::bigint[], %(claims)s::integer[]) AS mine(id, claims)
WHERE o.id = mine.id AND o.claims = mine.claims AND o.available_at > now()
"""
_CHANGED_SINCE = f"""
SELECT DISTINCT e.originator_id FROM {EVENTS_TABLE} AS e
JOIN unnest(%(ids)s::uuid[], %(versions)s::bigint[]) AS v(id, version)
  ON e.originator_id = v.id AND e.originator_version > v.version
"""


@dataclass(frozen=True)
class ConcurrencyLimits:
    per_tenant: int = 100
    per_host: int = 20
    window: int = 5000  # due messages considered per claim


class PostgresOutbox:
    def __init__(
        self,
        conninfo: str,
        notifications: Notifications,
        limits: ConcurrencyLimits | None = None,
        pool_size: int = 3,
        connect_timeout: float = 5.0,
        worker_id: UUID | None = None,
    ) -> None:
        """``connect_timeout``: how long an operation waits for a connection (while the
        database is away) before it raises ``PoolTimeout``; ``worker_id``: whom the messages
        claimed here are leased to (``infrastructure.worker_registry``)."""
        self._limits = limits or ConcurrencyLimits()
        self._pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "row_factory": dict_row},
            configure=None if worker_id is None else _working_for(worker_id),
            check=ping_if_idle,
            timeout=connect_timeout,
            open=True,
        )
        self._wakeups = {kind: threading.Event() for kind in KINDS}
        # kinds whose waiters are held back by a concurrency limit: a freed slot wakes them
        # (kept between waits, so a slot freed between a claim and the next wait still counts)
        self._slot_waiters: set[str] = set()
        # Listened to from the first wait: a process that never waits (the API) is not woken
        # by every submit's and outcome's notify.
        self._notifications = notifications
        self._unsubscribe: Callable[[], None] | None = None
        self._subscribing = threading.Lock()

    @property
    def pool(self) -> ConnectionPool[psycopg.Connection[dict[str, Any]]]:
        return self._pool

    def claim(self, kind: str, limit: int, lookahead: float = 0.0) -> Claimed:
        """One statement on an autocommit connection: its own transaction."""
        params = {"kind": kind, "limit": limit, "lookahead": lookahead}
        with self._pool.connection() as conn:
            if kind == EXECUTE:
                rows = conn.execute(_CLAIM, params).fetchall()
                return Claimed(sorted(map(_message, rows), key=_due_at))
            if kind == START:
                limits = self._limits
                rows = conn.execute(_CLAIM_STARTS, (
                    limit, lookahead, limits.window, limits.per_tenant, limits.per_host
                )).fetchall()
            else:
                rows = conn.execute(_CLAIM_AND_NEXT, params).fetchall()
        (next_in,) = [row["next_seconds"] for row in rows if row["id"] is None]
        claimed = [_message(row, _claim_read(row)) for row in rows if row["id"] is not None]
        return Claimed(sorted(claimed, key=_due_at), next_in)

    def release(self, messages: Sequence[OutboxMessage]) -> int:
        """Hand claimed messages back before their leases end (a worker stopping); how many."""
        mine = [m for m in messages if m.id is not None]
        if not mine:
            return 0
        params = {"ids": [m.id for m in mine], "claims": [m.claims for m in mine]}
        with self._pool.connection() as conn:
            return conn.execute(_RELEASE, params).rowcount

    def changed_since(self, versions: dict[UUID, int]) -> set[UUID]:
        if not versions:
            return set()
        ids, after = list(versions), list(versions.values())
        with self._pool.connection() as conn:
            rows = conn.execute(_CHANGED_SINCE, {"ids": ids, "versions": after}).fetchall()
        return {row["originator_id"] for row in rows}

    def wait(self, kind: str, timeout: float, *, or_slot_freed: bool = False) -> None:
        if self._unsubscribe is None:
            self._listen()
        if or_slot_freed:
            self._slot_waiters.add(kind)
        else:
            self._slot_waiters.discard(kind)
        wakeup = self._wakeups[kind]
        wakeup.wait(max(timeout, 0.0))
        wakeup.clear()

    def wake(self, kind: str) -> None:
        self._wakeups[kind].set()

    def depth(self) -> dict[str, int]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT kind, count(*) AS n FROM {OUTBOX_TABLE} GROUP BY kind"
            ).fetchall()
        return {row["kind"]: row["n"] for row in rows}

    def close(self) -> None:
        with self._subscribing:
            if self._unsubscribe is not None:
                self._unsubscribe()
        self._wake_all()
        self._pool.close()

    def _listen(self) -> None:
        """Subscribe to the outbox channel (once); the listener then wakes every loop, so a
        notify sent before its LISTEN is not missed."""
        with self._subscribing:
            if self._unsubscribe is None:
                self._unsubscribe = self._notifications.subscribe(OUTBOX_CHANNEL, self._notified)

    def _notified(self, payload: str | None) -> None:
        """A notify on the outbox channel: wake the loops waiting for its kind; a freed slot
        wakes those held back by a limit; ``None`` (maybe missed some) wakes every loop."""
        if payload is None:
            self._wake_all()
            return
        woken = tuple(self._slot_waiters) if payload == SLOT_FREED else _WAKES.get(payload, ())
        for kind in woken:
            self._wakeups[kind].set()

    def _wake_all(self) -> None:
        for wakeup in self._wakeups.values():
            wakeup.set()


def _working_for(worker_id: UUID) -> Callable[[psycopg.Connection[Any]], None]:
    """A new connection's set-up: it claims for ``worker_id`` (``schema.LEASE_HOLDER``)."""

    def configure(conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT set_config(%s, %s, false)", (WORKER_SETTING, str(worker_id)))

    return configure


def _due_at(message: OutboxMessage) -> datetime:
    assert message.due_at is not None
    return message.due_at


def _claim_read(row: dict[str, Any]) -> ClaimRead | None:
    """What a ``start`` claim read with its message (``duecall_claim_starts``)."""
    if "e_versions" not in row:
        return None
    call_id = row["service_call_id"]
    columns = (row["e_versions"] or (), row["e_topics"] or (), row["e_states"] or ())
    events = ((call_id, *event) for event in zip(*columns, strict=True))
    return ClaimRead(tuple(stored_events_of(events)), row["circuit_id"])


def _message(row: dict[str, Any], read: ClaimRead | None = None) -> OutboxMessage:
    return OutboxMessage(
        id=row["id"],
        kind=row["kind"],
        tenant_id=row["tenant_id"],
        service_call_id=row["service_call_id"],
        attempt=row["attempt"],
        due_at=row["due_at"],
        available_at=row["available_at"],
        lease_seconds=row["lease_seconds"],
        claims=row["claims"],
        host=row["host"],
        payload=row["payload"],
        read=read,
    )
