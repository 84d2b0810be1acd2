"""The `workflow_runs` read model: one row per workflow run, its status, times and step counts.

A run's step events name one step (or, ``Cancelled`` and ``RetryRequested``, a few) and what
it became, not how many steps are in each state: a step that is retried or re-run leaves a
state it had counted in. So the row keeps each step's state (``step_states``, a small JSON
object of step id → state) and its counts are worked out from it, once per run and batch.
Folding a batch reads the status, start time and step states of the rows its events touch
that earlier batches wrote (ONE query), applies the events in log order in memory and writes
absolute values (``aggregate_rows.py``, as ``schedules.py`` does): a rebuild gives the same
rows whatever the batch boundaries. The duration (first step ordered to the run's end, as
``WorkflowRun.duration``) is a generated column.

The queries (``list_workflow_runs``, ``latest_workflow_run``) serve the API and the dashboard.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Cursor
from psycopg.rows import DictRow

from domain.errors import InvalidRequestError
from domain.workflow_dag import StepState
from domain.workflow_run_status import RunStatus
from infrastructure.migrations import Migration
from projections.aggregate_rows import AggregateRows
from projections.index_keys import INDEX_KEY_FUNCTIONS, key
from projections.query import Page, Sort, Where, check_choices, fetch_page
from projections.runner import LogEvent

TABLE = "duecall_rm_workflow_runs"
PREFIX = "duecall:WorkflowRun."
STATUSES = frozenset(s.value for s in RunStatus)
NEWEST_FIRST = Sort("-created", "created_at", descending=True)
# The step counts (each a column ``steps_<state>``), worked out from ``step_states``.
COUNTED = (StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED,
           StepState.RUNNING)
# The columns a list answers (not ``step_states``: up to a few KiB a run, for the fold only).
LISTED = ("id", "tenant_id", "name", "status", "definition_version", "origin", "halted_by",
          "compensation", "cancel_reason", "steps_total",
          *(f"steps_{state.value}" for state in COUNTED), "duration_seconds", "created_at",
          "started_at", "finished_at", "updated_at", "version")
# What an event reads of its row besides what it sets: loaded for the rows a batch touches
# that earlier batches wrote.
_STATE = ("status", "started_at", "step_states")

MIGRATIONS = [
    Migration(
        1,
        "create workflow runs read model",
        INDEX_KEY_FUNCTIONS + f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (
            id uuid PRIMARY KEY,
            tenant_id text NOT NULL,
            name text NOT NULL,
            status text NOT NULL,
            definition_version integer,
            origin text,
            halted_by text,
            compensation text,
            cancel_reason text,
            step_states jsonb NOT NULL,
            steps_total integer NOT NULL,
            steps_succeeded integer NOT NULL DEFAULT 0,
            steps_failed integer NOT NULL DEFAULT 0,
            steps_skipped integer NOT NULL DEFAULT 0,
            steps_cancelled integer NOT NULL DEFAULT 0,
            steps_running integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL,
            started_at timestamptz,
            finished_at timestamptz,
            duration_seconds double precision GENERATED ALWAYS AS
                (extract(epoch FROM finished_at - started_at)::double precision) STORED,
            updated_at timestamptz NOT NULL,
            version integer NOT NULL
        );
        CREATE INDEX IF NOT EXISTS {TABLE}_created ON {TABLE} (tenant_id, created_at DESC, id DESC);
        CREATE INDEX IF NOT EXISTS {TABLE}_status
            ON {TABLE} (tenant_id, status, created_at DESC, id DESC);
        CREATE INDEX IF NOT EXISTS {TABLE}_name_key
            ON {TABLE} (tenant_id, {key("name")}, created_at DESC, id DESC);
        """,
    ),
]

Row = dict[str, Any]


def _created(e: Any) -> Row:
    steps = {str(step["id"]): StepState.PENDING.value for step in e.definition["steps"]}
    return {
        "tenant_id": e.tenant_id,
        "name": e.name,
        "status": RunStatus.PENDING.value,
        "definition_version": e.definition_version,
        "origin": getattr(e, "origin", None),  # a schedule's fire: "schedule:<id>"
        "halted_by": None,
        "compensation": None,
        "cancel_reason": None,
        "step_states": steps,
        "steps_total": len(steps),
        "created_at": e.timestamp,
        "started_at": None,
        "finished_at": None,
    }


def _steps(row: Row, state: StepState, steps: Sequence[str]) -> Row:
    """``steps`` are in ``state`` now (a step the run does not have is an error: the event
    is recorded as one the read model could not fold)."""
    states = row["step_states"]
    for step in steps:
        if step not in states:
            raise KeyError(f"the run has no step {step!r}")
        states[step] = state.value
    return {"step_states": states}


def _step_started(row: Row, e: Any) -> Row:
    changes = _steps(row, StepState.RUNNING, [e.step])
    if row["status"] == RunStatus.PENDING:
        changes["status"] = RunStatus.RUNNING.value
    if row["started_at"] is None:
        changes["started_at"] = e.started_at
    return changes


def _ended(status: RunStatus, **changes: Any) -> Row:
    return {"status": status.value, **changes}


_CHANGES: dict[str, Callable[[Row, Any], Row]] = {
    "StepStarted": _step_started,
    "StepSkipped": lambda row, e: _steps(row, StepState.SKIPPED, [e.step]),
    "StepSucceeded": lambda row, e: _steps(row, StepState.SUCCEEDED, [e.step]),
    "StepFailed": lambda row, e: _steps(row, StepState.FAILED, [e.step]),
    "StepCancelled": lambda row, e: _steps(row, StepState.CANCELLED, [e.step]),
    "CompensationStarted": lambda row, e: {
        "status": RunStatus.COMPENSATING.value, "halted_by": e.halted_by,
    },
    "Succeeded": lambda row, e: _ended(RunStatus.SUCCEEDED, finished_at=e.finished_at),
    "Failed": lambda row, e: _ended(
        RunStatus.FAILED, finished_at=e.finished_at, halted_by=e.halted_by,
        compensation=e.compensation,
    ),
    "Cancelled": lambda row, e: {
        **_steps(row, StepState.CANCELLED, e.steps),
        **_ended(RunStatus.CANCELLED, finished_at=e.cancelled_at, cancel_reason=e.reason),
    },
    "Paused": lambda row, e: {"status": RunStatus.PAUSED.value},
    "Resumed": lambda row, e: {"status": RunStatus(e.status).value},
    "RetryRequested": lambda row, e: {
        **_steps(row, StepState.PENDING, e.steps),
        "status": RunStatus.RUNNING.value, "halted_by": None, "finished_at": None,
    },
    "StepRerunRequested": lambda row, e: {
        **_steps(row, StepState.PENDING, [e.step]),
        "status": RunStatus.RUNNING.value, "finished_at": None, "cancel_reason": None,
    },
}
def counts(step_states: dict[str, str]) -> Row:
    """The ``steps_<state>`` columns of a run with these step states."""
    found = dict.fromkeys((f"steps_{state.value}" for state in COUNTED), 0)
    for state in step_states.values():
        column = f"steps_{state}"
        if column in found:
            found[column] += 1
    return found


_ROWS = AggregateRows(TABLE, PREFIX, _STATE, _created, _CHANGES)


class WorkflowRunsProjection:
    name: str = "workflow_runs"
    topics: frozenset[str] = _ROWS.topics
    tables: tuple[str, ...] = (TABLE,)
    migrations: Sequence[Migration] = MIGRATIONS

    def fold(self, curs: Cursor[DictRow], events: Sequence[LogEvent]) -> None:
        rows, current = _ROWS.fold(curs, events)
        for run_id, state in current.items():  # once per run and batch, not per event
            states = state["step_states"]
            rows.update(run_id, {"step_states": dict(states), **counts(states)})
        rows.flush(curs)


# -- queries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowRunFilters:
    """Runs of any of ``status`` (none: every status), of ``name``, created at or after
    ``created_after`` and before ``created_before``."""

    status: list[str] | None = None
    name: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def where(self, tenant_id: str) -> Where:
        check_choices("status", self.status, STATUSES)
        after, before = self.created_after, self.created_before
        if after is not None and before is not None and before <= after:
            raise InvalidRequestError("created_before", "must be later than created_after")
        where = Where().add("tenant_id = %s", tenant_id).any_of("status", self.status)
        if after is not None:
            where.add("created_at >= %s", after)
        if before is not None:
            where.add("created_at < %s", before)
        return where.keyed("name", self.name)


def list_workflow_runs(
    curs: Cursor[DictRow],
    tenant_id: str,
    filters: WorkflowRunFilters,
    *,
    limit: int = 50,
    cursor: str | None = None,
    include_total: bool = False,
) -> Page:
    """A tenant's runs, newest first, filtered; keyset pages (``cursor``: the last page's
    ``next_cursor``)."""
    where = filters.where(tenant_id)
    return fetch_page(curs, TABLE, where, NEWEST_FIRST, limit, cursor, include_total,
                      columns=LISTED)


def latest_workflow_run(curs: Cursor[DictRow], tenant_id: str, name: str) -> Row | None:
    """The tenant's newest run of ``name`` (None: it has none)."""
    page = list_workflow_runs(curs, tenant_id, WorkflowRunFilters(name=name), limit=1)
    return page.items[0] if page.items else None
