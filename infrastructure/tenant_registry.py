"""Postgres registry of tenants (rows written by the recorder with a tenant's first event)."""

from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from infrastructure.schema import TENANTS_TABLE


class PostgresTenantRegistry:
    def __init__(self, pool: ConnectionPool[psycopg.Connection[dict[str, Any]]]) -> None:
        self._pool = pool

    def tenant_names(self) -> list[str]:
        with self._pool.connection() as conn:
            rows = conn.execute(f"SELECT name FROM {TENANTS_TABLE} ORDER BY name").fetchall()
        return [row["name"] for row in rows]
