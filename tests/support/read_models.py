"""Helpers for read-model tests: a fresh start, catching up, and table checksums."""

import psycopg

from infrastructure.container import Container
from projections.read_models import PROJECTIONS


def reset_read_models(container: Container) -> None:
    """Empty every read model and set its position back to 0 (the events were truncated)."""
    for projection in PROJECTIONS:
        container.read_models.reset(projection.name)


def catch_up(container: Container) -> None:
    for runner in container.read_models.runners.values():
        runner.catch_up(lambda _: None)


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
