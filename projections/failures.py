"""Projection failures: events a read model could not fold, recorded and passed over.

An event whose values a read model's tables refuse (or whose fold raises) would otherwise fail
its batch on every try and hold the read model back for every tenant. The runner records it
here, in the same transaction as the batch's other rows and the new position, and moves on.
A failure stays until the read model is rebuilt (which clears them and folds everything again).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from psycopg import Cursor
from psycopg.rows import DictRow

from infrastructure.database_errors import about_the_data, unreachable
from infrastructure.migrations import Migration

log = structlog.get_logger(__name__)

FAILURES_TABLE = "duecall_projection_failures"
MAX_ERROR_CHARS = 2000

# Errors a fold raises for the event it was given: the database refused its values, or the
# event lacks or mistypes a field the projector reads.
_EVENT_ERRORS = (LookupError, AttributeError, TypeError, ValueError, ArithmeticError)

FAILURES_MIGRATION = Migration(
    2,
    "create projection failures",
    f"""
    CREATE TABLE IF NOT EXISTS {FAILURES_TABLE} (
        projection text NOT NULL,
        position bigint NOT NULL,
        topic text NOT NULL,
        originator_id uuid NOT NULL,
        tenant_id text,
        error text NOT NULL,
        failed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (projection, position)
    )
    """,
)


@dataclass(frozen=True)
class ProjectionFailure:
    projection: str
    position: int
    topic: str
    originator_id: UUID
    tenant_id: str | None
    error: str
    failed_at: datetime | None = None


def about_the_event(error: BaseException) -> bool:
    """The fold failed for the events it was given (not for the database being away)."""
    if unreachable(error):
        return False
    return about_the_data(error) or isinstance(error, _EVENT_ERRORS)


def describe(error: BaseException) -> str:
    """``Type: message`` on one line, bounded."""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}"[:MAX_ERROR_CHARS]


def record_failure(curs: Cursor[DictRow], failure: ProjectionFailure) -> None:
    curs.execute(
        f"INSERT INTO {FAILURES_TABLE} "
        "(projection, position, topic, originator_id, tenant_id, error) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (projection, position) "
        "DO UPDATE SET error = EXCLUDED.error, failed_at = now()",
        (failure.projection, failure.position, failure.topic, failure.originator_id,
         failure.tenant_id, failure.error),
    )


def log_failure(failure: ProjectionFailure) -> None:
    log.error("projection_event_failed", projection=failure.projection,
              position=failure.position, topic=failure.topic,
              originator_id=str(failure.originator_id), tenant_id=failure.tenant_id,
              error=failure.error)


def clear_failures(curs: Cursor[DictRow], projection: str) -> None:
    curs.execute(f"DELETE FROM {FAILURES_TABLE} WHERE projection = %s", (projection,))


def list_failures(
    curs: Cursor[DictRow], projection: str | None = None, limit: int = 100
) -> list[ProjectionFailure]:
    """The newest failures first, of one projection or all."""
    curs.execute(
        f"SELECT * FROM {FAILURES_TABLE} WHERE %(p)s::text IS NULL OR projection = %(p)s "
        "ORDER BY failed_at DESC, position DESC LIMIT %(n)s",
        {"p": projection, "n": limit},
    )
    return [ProjectionFailure(**row) for row in curs.fetchall()]


def failure_summary(curs: Cursor[DictRow]) -> dict[str, tuple[int, ProjectionFailure]]:
    """Per projection with failures: how many, and the latest."""
    curs.execute(
        f"SELECT DISTINCT ON (projection) count(*) OVER (PARTITION BY projection) AS n, * "
        f"FROM {FAILURES_TABLE} ORDER BY projection, failed_at DESC, position DESC"
    )
    return {row["projection"]: (int(row.pop("n")), ProjectionFailure(**row))
            for row in curs.fetchall()}


def failure_of(projection: str, topic: str, position: int, originator_id: UUID, event: Any,
               error: BaseException) -> ProjectionFailure:
    """The failure of one event (``event`` None when it could not even be decoded)."""
    tenant = getattr(event, "tenant_id", None)
    return ProjectionFailure(projection, position, topic, originator_id,
                             tenant if isinstance(tenant, str) else None, describe(error))

