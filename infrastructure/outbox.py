"""Postgres implementation of the outbox port: leased claims, woken by the outbox channel's
notifies (through the process's one listener, ``infrastructure/notifications.py``)."""

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from application.outbox import KINDS, START, Claimed, OutboxMessage
from infrastructure.notifications import Notifications
from infrastructure.pool_checks import ping_if_idle
from infrastructure.schema import (
    CLAIM_STARTS_FUNCTION,
    EVENTS_TABLE,
    OUTBOX_CHANNEL,
    OUTBOX_TABLE,
    SLOT_FREED,
)

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
    claims = o.claims + 1
FROM due WHERE o.id = due.id
RETURNING o.id, o.kind, o.tenant_id, o.service_call_id, o.attempt, o.due_at,
          o.available_at, o.lease_seconds, o.claims, o.host, o.payload
"""
_CLAIM_STARTS = f"SELECT * FROM {CLAIM_STARTS_FUNCTION}(%s, %s, %s, %s, %s)"  # schema.py
# Handing back (a worker stopping): available again at once, or at its due time if that is
# still ahead (a timer's held ``start`` message). Only claims still ours: same claim count.
_RELEASE = f"""
UPDATE {OUTBOX_TABLE} AS o
SET available_at = greatest(o.due_at, now())
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
    ) -> None:
        """``connect_timeout``: how long an operation waits for a connection (while the
        database is away) before it raises ``PoolTimeout``."""
        self._limits = limits or ConcurrencyLimits()
        self._pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "row_factory": dict_row},
            check=ping_if_idle,
            timeout=connect_timeout,
            open=True,
        )
        self._wakeups = {kind: threading.Event() for kind in KINDS}
        # kinds whose waiters are held back by a concurrency limit: a freed slot wakes them
        # (kept between waits, so a slot freed between a claim and the next wait still counts)
        self._slot_waiters: set[str] = set()
        self._unsubscribe: Callable[[], None] = notifications.subscribe(
            OUTBOX_CHANNEL, self._notified
        )

    @property
    def pool(self) -> ConnectionPool[psycopg.Connection[dict[str, Any]]]:
        return self._pool

    def claim(self, kind: str, limit: int, lookahead: float = 0.0) -> Claimed:
        """One statement on an autocommit connection: its own transaction."""
        with self._pool.connection() as conn:
            if kind != START:
                rows = conn.execute(
                    _CLAIM, {"kind": kind, "limit": limit, "lookahead": lookahead}
                ).fetchall()
                return Claimed(sorted(map(_message, rows), key=_due_at))
            limits = self._limits
            rows = conn.execute(_CLAIM_STARTS, (
                limit, lookahead, limits.window, limits.per_tenant, limits.per_host
            )).fetchall()
        (next_in,) = [row["next_seconds"] for row in rows if row["id"] is None]
        claimed = [_message(row) for row in rows if row["id"] is not None]
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
        self._unsubscribe()
        self._wake_all()
        self._pool.close()

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


def _due_at(message: OutboxMessage) -> datetime:
    assert message.due_at is not None
    return message.due_at


def _message(row: dict[str, Any]) -> OutboxMessage:
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
    )
