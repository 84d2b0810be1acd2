"""The `workflow_definitions` read model: one row per stored workflow definition (a tenant's
name), its newest version and step count; the list of a tenant's definitions.

``Registered`` inserts the row, each ``VersionAdded`` sets the newest version (the event's
aggregate version is the definition's) and its step count: absolute values, so a rebuild
gives the same rows whatever the batch boundaries. The documents themselves are read from
the aggregate (``GET /v1/workflows/definitions/{name}``), not kept here.
"""

from collections.abc import Sequence
from typing import Any

import structlog
from psycopg import Cursor
from psycopg.rows import DictRow

from infrastructure.migrations import Migration
from projections.folding import RowChanges
from projections.query import Page, Sort, Where, fetch_page
from projections.runner import LogEvent

log = structlog.get_logger(__name__)

TABLE = "duecall_rm_workflow_definitions"
PREFIX = "duecall:StoredWorkflowDefinition."
SORT = Sort("-created", "created_at", descending=True)

MIGRATIONS = [
    Migration(
        1,
        "create workflow definitions read model",
        f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (
            id uuid PRIMARY KEY,
            tenant_id text NOT NULL,
            name text NOT NULL,
            version integer NOT NULL,
            steps integer NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL
        );
        CREATE INDEX IF NOT EXISTS {TABLE}_created
            ON {TABLE} (tenant_id, created_at DESC, id DESC);
        """,
    ),
]


def _steps(definition: Any) -> int:
    steps = definition.get("steps") if isinstance(definition, dict) else None
    return len(steps) if isinstance(steps, list) else 0


class WorkflowDefinitionsProjection:
    name: str = "workflow_definitions"
    topics: frozenset[str] = frozenset({PREFIX + "Registered", PREFIX + "VersionAdded"})
    tables: tuple[str, ...] = (TABLE,)
    migrations: Sequence[Migration] = MIGRATIONS

    def fold(self, curs: Cursor[DictRow], events: Sequence[LogEvent]) -> None:
        rows = RowChanges(TABLE)
        for recorded in events:
            e = recorded.event
            changes = {
                "version": e.originator_version,
                "steps": _steps(e.definition),
                "updated_at": e.timestamp,
            }
            if recorded.topic == PREFIX + "Registered":
                rows.insert(e.originator_id, {
                    "tenant_id": e.tenant_id, "name": e.name, "created_at": e.timestamp,
                    **changes,
                })
            else:
                rows.update(e.originator_id, changes)
        rows.flush(curs)


def list_definitions(
    curs: Cursor[DictRow],
    tenant_id: str,
    *,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """The tenant's stored definitions, the newest registered first; keyset pages."""
    where = Where().add("tenant_id = %s", tenant_id)
    return fetch_page(curs, TABLE, where, SORT, limit, cursor)
