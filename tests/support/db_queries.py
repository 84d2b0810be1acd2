"""Small SQL reads of what duecall recorded, for tests that look at the tables themselves."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

OUTBOX_COLUMNS = ("id", "kind", "attempt", "due_at", "available_at", "claims", "payload")


def rows(url: str, query: str | sql.Composed, *params: Any) -> list[tuple[Any, ...]]:
    """All rows of ``query`` (with ``params``), on a connection of its own."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def topics(url: str, originator_id: UUID) -> list[str]:
    """The topics of an aggregate's recorded events, oldest first."""
    found = rows(
        url,
        "SELECT topic FROM duecall_events WHERE originator_id = %s ORDER BY originator_version",
        originator_id,
    )
    return [str(row[0]) for row in found]


def event_count(url: str) -> int:
    """How many events are recorded, of all aggregates."""
    return int(rows(url, "SELECT count(*) FROM duecall_events")[0][0])


def outbox_rows(
    url: str, call_id: UUID, columns: Sequence[str] = OUTBOX_COLUMNS
) -> list[tuple[Any, ...]]:
    """``columns`` of a call's outbox messages, in the order they were published."""
    query = sql.SQL(
        "SELECT {} FROM duecall_outbox WHERE service_call_id = %s ORDER BY id"
    ).format(sql.SQL(", ").join(map(sql.Identifier, columns)))
    return rows(url, query, call_id)
