"""Shared fixtures: a real PostgreSQL for every database test.

With DATABASE_URL set, a fresh database is created on that server for the session; without it,
an embedded server (pgserver) is started in a temporary directory. Either way the session's
database is dropped at the end.
"""

import itertools
import os
from collections.abc import Iterator

import psycopg
import pytest

from harness.databases import EmbeddedServer, fresh_database
from infrastructure import notifications
from infrastructure.container import Container
from infrastructure.settings import Settings
from tests.support.clean_state import container_settings, emptied

LISTEN_WAIT_SECONDS = 0.05  # one wait for notifies of the tests' in-process listeners


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "database_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)
    # Longest first: the test processes take whole modules in this order (--dist loadfile,
    # --no-loadscope-reorder), so the minute-long runs do not come last, one process alone.
    tier = {module: min(_tier(item) for item in group) for module, group in
            itertools.groupby(sorted(items, key=_module), key=_module)}
    items.sort(key=lambda item: tier[_module(item)])


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def _tier(item: pytest.Item) -> int:
    """0: a whole-system run; 1: real server processes; 2: the database; 3: the rest."""
    for tier, marker in enumerate(("slow", "e2e", "db")):
        if item.get_closest_marker(marker):
            return tier
    return 3


@pytest.fixture(scope="session", autouse=True)
def quick_listener_close() -> Iterator[None]:
    """The in-process listeners (one per container) wait for notifies in short slices, so
    closing a container takes milliseconds instead of up to half a second."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(notifications, "_LISTEN_WAIT", LISTEN_WAIT_SECONDS)
        yield


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    server = EmbeddedServer.temporary("dc-")
    try:
        url = server.start()
        _without_fsync(url)
        yield url
    finally:
        server.remove()


def _without_fsync(url: str) -> None:
    """The tests' own server does not wait for its disk: nothing here survives a crash of it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("ALTER SYSTEM SET synchronous_commit = off")
        conn.execute("ALTER SYSTEM SET full_page_writes = off")
        conn.execute("SELECT pg_reload_conf()")


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    with fresh_database(server_url) as url:
        yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return container_settings(database_url)


@pytest.fixture
def clean_database(database_url: str) -> Iterator[str]:
    """The session database emptied of what earlier tests recorded (tests/support/clean_state)."""
    with emptied(database_url) as url:
        yield url


@pytest.fixture
def container(settings: Settings, clean_database: str) -> Iterator[Container]:
    built = Container.build(settings)
    try:
        yield built
    finally:
        built.close()
