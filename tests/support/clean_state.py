"""The tests' settings for in-process containers, and emptying the session database between
tests (the tables that hold what one test recorded and another could see)."""

import contextlib
from collections.abc import Iterator

import psycopg
from psycopg import sql

from harness.network import LOOPBACK_ALLOWLIST
from infrastructure.schema import WORKERS_TABLE
from infrastructure.settings import Settings
from projections.failures import FAILURES_TABLE as FAILURES

RECORDED = (
    "duecall_outbox", "duecall_events", "duecall_snapshots", "duecall_tenants", FAILURES,
    WORKERS_TABLE,  # rows of workers an earlier test killed
)


def container_settings(database_url: str) -> Settings:
    """Settings of a test's container: quick polling, limits out of the way."""
    return Settings(
        database_url=database_url,
        poll_interval_seconds=0.2,
        execution_grace_seconds=2.0,
        log_format="console",
        tenant_max_in_flight=10_000,  # limits have their own tests
        host_max_in_flight=10_000,
        outbound_allowlist=LOOPBACK_ALLOWLIST,  # the targets run on 127.0.0.1
    )


@contextlib.contextmanager
def emptied(database_url: str) -> Iterator[str]:
    """The database with no outbox messages and no events left by earlier tests; the events a
    read model could not fold go afterwards too (a server that later shares the database would
    be unready while they are there)."""
    truncate(database_url, *RECORDED)
    try:
        yield database_url
    finally:
        truncate(database_url, FAILURES)


def truncate(database_url: str, *tables: str) -> None:
    """Empty those of ``tables`` that exist, in one statement."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT array_agg(t) FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NOT NULL",
            (list(tables),),
        ).fetchone()
        existing = found[0] if found and found[0] else []
        if existing:
            conn.execute(sql.SQL("TRUNCATE {}").format(
                sql.SQL(", ").join(map(sql.Identifier, existing))))
