"""The CLI says "cannot reach the database" only when it cannot; a statement the database
refused is named with its SQLSTATE and message (a rebuild's fold error was reported as an
outage: psycopg files "index row size exceeds maximum" under OperationalError)."""

import psycopg
from eventsourcing.persistence import OperationalError as StoreOperationalError
from psycopg_pool import PoolTimeout

from interfaces.cli_errors import sentence


def _as_the_store_raises(cause: Exception) -> Exception:
    """``cause`` re-raised as eventsourcing's datastore does (its class, the psycopg cause)."""
    try:
        try:
            raise cause
        except psycopg.Error as error:
            raise StoreOperationalError(str(error)) from error
    except StoreOperationalError as error:
        return error


def test_a_statement_the_database_refused_is_named_not_called_an_outage() -> None:
    refused = _as_the_store_raises(psycopg.errors.ProgramLimitExceeded(
        'index row size 4016 exceeds maximum 2712 for index "duecall_rm_service_calls_tags"'))
    said = sentence(refused)
    assert "cannot reach" not in said
    assert "54000" in said
    assert "index row size 4016" in said


def test_a_database_that_is_away_is_called_unreachable() -> None:
    for away in (psycopg.OperationalError("connection refused"),
                 psycopg.errors.AdminShutdown("terminating connection")):
        assert sentence(_as_the_store_raises(away)).startswith("cannot reach the database")
    pool = StoreOperationalError("pool")
    pool.__cause__ = PoolTimeout("no connection in 5 s")
    assert sentence(pool).startswith("cannot reach the database")
