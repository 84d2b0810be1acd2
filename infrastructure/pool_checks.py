"""What a connection pool checks before it hands a connection out."""

import time
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

PING_AFTER_IDLE_SECONDS = 1.0


def ping_if_idle(conn: psycopg.Connection[Any]) -> None:
    """A pool's check when it hands a connection out: a round trip to the server only if the
    connection has not been handed out for ``PING_AFTER_IDLE_SECONDS`` (it may have broken
    meanwhile: a restart, a killed backend). One in steady use goes out as it is; if it broke
    after all, its operation fails like any other (and is retried by its caller) and the pool
    drops it."""
    now = time.monotonic()
    last: float | None = getattr(conn, "duecall_handed_out_at", None)
    conn.duecall_handed_out_at = now  # type: ignore[attr-defined]
    if last is None or now - last >= PING_AFTER_IDLE_SECONDS:
        ConnectionPool.check_connection(conn)


def ping_only_idle_connections(pool: ConnectionPool[Any]) -> None:
    """Make ``ping_if_idle`` the check of a pool built by eventsourcing (whose pre-ping pings
    every connection it hands out). ``_check`` is psycopg_pool's; a contract test pins it."""
    pool._check = ping_if_idle
