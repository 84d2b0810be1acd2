"""Helpers for read-model tests: a fresh start, catching up, and table checksums."""

from typing import Any
from uuid import UUID

import psycopg

from infrastructure.container import Container
from projections.read_models import PROJECTIONS
from tests.support.waiting import wait_until


def reset_read_models(container: Container) -> None:
    """Empty every read model and set its position back to 0 (the events were truncated)."""
    for projection in PROJECTIONS:
        container.read_models.reset(projection.name)


def catch_up(container: Container) -> None:
    for runner in container.read_models.runners.values():
        runner.catch_up(lambda _: None)


def folded_rows(container: Container, name: str, table: str) -> dict[UUID, dict[str, Any]]:
    """The rows of read model ``name``'s ``table`` (by id) once it has folded the log up to
    its head now (read-your-writes, asked again while the answer is stale)."""
    head = container.read_models.head()

    def read() -> dict[UUID, dict[str, Any]] | None:
        with container.read_models.reading(name, head) as (curs, freshness):
            curs.execute(f"SELECT * FROM {table}")
            rows = {row["id"]: dict(row) for row in curs.fetchall()}
        return None if freshness.stale else rows

    return wait_until(read, timeout=15)


def checksum(database_url: str, table: str) -> str:
    """An order-independent digest of a table's rows."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {table} t"
        ).fetchone()
    assert row is not None
    return str(row[0])


def checksums(database_url: str) -> dict[str, str]:
    tables = [table for projection in PROJECTIONS for table in projection.tables]
    return {table: checksum(database_url, table) for table in tables}


def checksums_then_reset(container: Container, database_url: str) -> dict[str, str]:
    """The checksums of the tables as the runners build them one model at a time; then every
    read model emptied again (positions back to 0) for the code under test to build."""
    catch_up(container)
    expected = checksums(database_url)
    reset_read_models(container)
    return expected
