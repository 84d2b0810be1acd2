"""Versioned, idempotent schema migrations for duecall's own tables, applied at start-up.

Each component (outbox, each read model) owns an ordered list of migrations. Applying takes a
transaction-scoped advisory lock, so several processes starting at once apply each version once.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import Connection

_LEDGER = """
CREATE TABLE IF NOT EXISTS duecall_schema_migrations (
    component text NOT NULL,
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def apply_migrations(
    conn: Connection[object], component: str, migrations: Sequence[Migration]
) -> list[int]:
    """Apply the migrations of ``component`` not yet applied; returns the versions applied."""
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('duecall_schema_migrations'))")
        conn.execute(_LEDGER)
        done = {
            row[0]  # type: ignore[index]
            for row in conn.execute(
                "SELECT version FROM duecall_schema_migrations WHERE component = %s",
                (component,),
            ).fetchall()
        }
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in done:
                continue
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO duecall_schema_migrations (component, version, name) "
                "VALUES (%s, %s, %s)",
                (component, migration.version, migration.name),
            )
            applied.append(migration.version)
    return applied
