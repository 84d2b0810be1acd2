"""Postgres lookup of idempotency records (written by the recorder, read here)."""

from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from application.idempotency import IdempotencyRecord
from infrastructure.schema import IDEMPOTENCY_TABLE

_FIND = (
    f"SELECT tenant_id, key, service_call_id, request_hash FROM {IDEMPOTENCY_TABLE} "
    "WHERE tenant_id = %s AND key = %s"
)


class PostgresIdempotencyKeys:
    def __init__(self, pool: ConnectionPool[psycopg.Connection[dict[str, Any]]]) -> None:
        self._pool = pool  # its connections return rows as dicts

    def find(self, tenant_id: str, key: str) -> IdempotencyRecord | None:
        with self._pool.connection() as conn:
            row = conn.execute(_FIND, (tenant_id, key)).fetchone()
        return IdempotencyRecord(**row) if row else None
