"""Postgres lookup of idempotency records (written by the recorder, read here)."""

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from application.idempotency import IdempotencyRecord
from infrastructure.schema import IDEMPOTENCY_TABLE

_FIND = (
    f"SELECT tenant_id, key, service_call_id, request_hash FROM {IDEMPOTENCY_TABLE} "
    "WHERE tenant_id = %s AND key = ANY(%s)"
)


class PostgresIdempotencyKeys:
    def __init__(self, pool: ConnectionPool[psycopg.Connection[dict[str, Any]]]) -> None:
        self._pool = pool  # its connections return rows as dicts

    def find(self, tenant_id: str, keys: Sequence[str]) -> dict[str, IdempotencyRecord]:
        with self._pool.connection() as conn:
            rows = conn.execute(_FIND, (tenant_id, list(keys))).fetchall()
        return {row["key"]: IdempotencyRecord(**row) for row in rows}
