"""Postgres registry of circuits (rows written by the recorder with the first circuit event)."""

from typing import Any
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool

from infrastructure.schema import CIRCUITS_TABLE


class PostgresCircuitRegistry:
    def __init__(self, pool: ConnectionPool[psycopg.Connection[dict[str, Any]]]) -> None:
        self._pool = pool

    def circuit_ids(self, tenant_id: str) -> list[UUID]:
        sql = f"SELECT circuit_id FROM {CIRCUITS_TABLE} WHERE tenant_id = %s ORDER BY host"
        with self._pool.connection() as conn:
            return [row["circuit_id"] for row in conn.execute(sql, (tenant_id,)).fetchall()]
