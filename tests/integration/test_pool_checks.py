"""A pooled connection is pinged only when it has been idle: steady use costs no round trip,
and one broken while idle is found before it is used."""

from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from infrastructure import pool_checks
from infrastructure.pool_checks import ping_if_idle, ping_only_idle_connections


def test_a_connection_in_steady_use_is_pinged_once(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[int] = []
    real = ConnectionPool.check_connection

    def counting(conn: psycopg.Connection[Any]) -> None:
        pings.append(conn.info.backend_pid)
        real(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counting))
    with ConnectionPool(database_url, min_size=1, max_size=1, open=False) as pool:
        ping_only_idle_connections(pool)  # as on eventsourcing's pools
        for _ in range(5):
            with pool.connection() as conn:
                conn.execute("SELECT 1")
    assert len(pings) == 1  # the first hand-out only


def test_a_connection_broken_while_idle_is_replaced_before_use(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_checks, "PING_AFTER_IDLE_SECONDS", 0.0)  # idle "long enough"
    with ConnectionPool(database_url, min_size=1, max_size=1, check=ping_if_idle) as pool:
        with pool.connection() as conn:
            broken_pid = conn.info.backend_pid
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (broken_pid,))
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.info.backend_pid != broken_pid
