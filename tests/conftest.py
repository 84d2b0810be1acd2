"""Shared fixtures: a real PostgreSQL for every database test.

With DATABASE_URL set, a fresh database is created on that server for the session; without it,
an embedded server (pgserver) is started in a temporary directory. Either way the session's
database is dropped at the end.
"""

import os
from collections.abc import Iterator

import psycopg
import pytest

from harness.databases import EmbeddedServer, fresh_database
from harness.network import LOOPBACK_ALLOWLIST
from infrastructure.container import Container
from infrastructure.settings import Settings
from projections.failures import FAILURES_TABLE as FAILURES


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "database_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    server = EmbeddedServer.temporary("dc-")
    try:
        yield server.start()
    finally:
        server.remove()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    with fresh_database(server_url) as url:
        yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        poll_interval_seconds=0.2,
        execution_grace_seconds=2.0,
        log_format="console",
        tenant_max_in_flight=10_000,  # limits have their own tests
        host_max_in_flight=10_000,
        outbound_allowlist=LOOPBACK_ALLOWLIST,  # the targets run on 127.0.0.1
    )


@pytest.fixture
def clean_database(database_url: str) -> Iterator[str]:
    """The session database with no outbox messages and no events left by earlier tests; the
    events a read model could not fold go after the test too (a server that later shares the
    database would be unready while they are there)."""
    _truncate(database_url, "duecall_outbox", "duecall_events", "duecall_tenants", FAILURES)
    yield database_url
    _truncate(database_url, FAILURES)


def _truncate(database_url: str, *tables: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in tables:
            exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            if exists and exists[0]:
                conn.execute(f"TRUNCATE {table}")


@pytest.fixture
def container(settings: Settings, clean_database: str) -> Iterator[Container]:
    built = Container.build(settings)
    try:
        yield built
    finally:
        built.close()
