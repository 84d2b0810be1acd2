"""Where the database is, and the eventsourcing environment that points at it."""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from eventsourcing.persistence import InterfaceError as StoreInterfaceError
from eventsourcing.persistence import OperationalError as StoreOperationalError
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import PoolTimeout

from infrastructure.embedded_postgres import embedded_database_url
from infrastructure.migrations import apply_migrations
from infrastructure.schema import CORE_MIGRATIONS
from infrastructure.settings import Settings
from projections.read_models import migrate_read_models

EVENTS_NAME = "duecall"  # every duecall application records into duecall_events

# What a read or write raises when the database is away (stopped, restarting, unreachable) or
# its connection broke: eventsourcing's wrappers and psycopg's own (the outbox's pool; a pool
# that cannot hand out a connection in time raises PoolTimeout, an OperationalError).
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    StoreOperationalError,
    StoreInterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


def no_connection(error: BaseException) -> bool:
    """True when ``error`` (or what caused it) is a pool that could not hand out a connection
    within its timeout: the database is away, and trying again at once only waits again."""
    seen: BaseException | None = error
    for _ in range(10):  # a chain, not a cycle
        if seen is None:
            return False
        if isinstance(seen, PoolTimeout):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL when set, else the embedded server (started if needed)."""
    return settings.database_url or embedded_database_url(settings.data_dir)


def eventsourcing_env(url: str, settings: Settings) -> dict[str, str]:
    info = conninfo_to_dict(url)
    return {
        "PERSISTENCE_MODULE": "infrastructure.outbox:EventStoreFactory",
        "POSTGRES_DBNAME": str(info.get("dbname", "postgres")),
        "POSTGRES_HOST": str(info.get("host", "localhost")),
        "POSTGRES_PORT": str(info.get("port", "5432")),
        "POSTGRES_USER": str(info.get("user", "postgres")),
        "POSTGRES_PASSWORD": str(info.get("password", "")),
        # one connection kept, up to twice the setting under load (closed again when idle)
        "POSTGRES_POOL_SIZE": "1",
        "POSTGRES_MAX_OVERFLOW": str(2 * settings.db_pool_size - 1),
        "POSTGRES_LOCK_TIMEOUT": str(settings.db_lock_timeout_seconds),
        "POSTGRES_CONNECT_TIMEOUT": str(settings.db_connect_timeout_seconds),
        "POSTGRES_PRE_PING": "n",  # ping_only_idle_connections instead
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        # aggregates read by id (a host's circuit, above all, updated by most outcomes for
        # that host) stay in memory and catch up on their newer events, never replayed whole
        "AGGREGATE_CACHE_MAXSIZE": "10000",
        "AGGREGATE_CACHE_FASTFORWARD": "y",
        "APPLICATION_RECORDER_TOPIC": "infrastructure.outbox:OutboxRecorder",
        "CREATE_TABLE": "y",
    }


def migrate(url: str) -> None:
    """Apply duecall's own schema migrations (idempotent; safe from several processes)."""
    with psycopg.connect(url, autocommit=True) as conn:
        apply_migrations(conn, "core", CORE_MIGRATIONS)
        migrate_read_models(conn)


@contextmanager
def schema_lock(url: str) -> Iterator[None]:
    """Hold a session advisory lock while creating tables: Postgres's catalog does not
    tolerate two processes running the same CREATE ... IF NOT EXISTS at once."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('duecall_schema'))")
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('duecall_schema'))")


def ping(url: str, timeout: float = 2.0) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True
