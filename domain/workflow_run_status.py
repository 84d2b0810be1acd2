"""A workflow run's statuses, its transition error, what it orders, and each step's record.

Every step (and every compensation) is a service call the application submits with the
idempotency key ``wf:<run id>:<step id>`` and the origin ``workflow:<run id>``. A step run
again (retried from failure, re-run by hand) is a new generation with its own key
(``wf:<run id>:<step id>:r<generation>``, generation 2 on), so its new call is a new call
while a re-made order of the same generation finds the call made before.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from domain.errors import InvalidTransitionError
from domain.request import RequestSpec
from domain.retry_policy import RetryPolicy
from domain.workflow_dag import StepState
from domain.workflow_outputs import StoredOutput

WORKFLOW_ORIGIN = "workflow:"  # a step's call's origin: "workflow:<run id>"
RUN_CANCELLED = "run_cancelled"  # the reason recorded for steps a cancel stopped
CALL_CANCELLED = "call_cancelled"  # a step whose call was cancelled (not by the run)


class RunStatus(StrEnum):
    PENDING = "pending"  # submitted, no step ordered yet
    RUNNING = "running"
    PAUSED = "paused"  # running steps finish; no new step is ordered
    COMPENSATING = "compensating"  # halted by a failure; compensations run, last done first
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
ADVANCING = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.COMPENSATING})


class CompensationOutcome(StrEnum):
    """How a failed run's compensations ended (recorded on its ``Failed`` event)."""

    COMPENSATED = "compensated"  # every compensation succeeded
    INCOMPLETE = "compensation_failed"  # at least one failed (or could not be rendered)


class WorkflowRunTransitionError(InvalidTransitionError):
    """A command not allowed in the run's status (an ``InvalidTransitionError``)."""

    def __init__(self, command: str, status: str) -> None:
        super().__init__(command, status)
        self.args = (f"cannot {command} a workflow run that is {status}",)


@dataclass(frozen=True)
class StepOrder:
    """A call to submit now: a step's (or, ``compensation``, its compensation's) request,
    rendered for this run, with the step's retry policy and its whole-step timeout."""

    step_id: str
    call_id: UUID
    idempotency_key: str
    request: RequestSpec
    retry_policy: RetryPolicy | None
    timeout_seconds: float | None
    generation: int
    origin: str
    compensation: bool = False
    seal_response: bool = False  # the step has secret outputs: its responses recorded sealed


@dataclass(frozen=True)
class StepRun:
    """One step's (or compensation's) latest generation, as the run's events left it."""

    state: StepState = StepState.PENDING
    generation: int = 1
    call_id: UUID | None = None
    idempotency_key: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    status_code: int | None = None
    reason: str | None = None  # why skipped, failed or cancelled
    outputs: Mapping[str, StoredOutput] = field(default_factory=dict)
    input_override: Mapping[str, Any] | None = None  # a re-run's edited input

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        """Plain values (a snapshot's, the API's)."""
        return {
            "state": self.state.value,
            "generation": self.generation,
            "call_id": self.call_id,
            "idempotency_key": self.idempotency_key,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "status_code": self.status_code,
            "reason": self.reason,
            "outputs": {name: output.as_dict() for name, output in self.outputs.items()},
            "input_override": None if self.input_override is None else dict(self.input_override),
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "StepRun":
        return cls(
            state=StepState(values["state"]),
            generation=values["generation"],
            call_id=values["call_id"],
            idempotency_key=values["idempotency_key"],
            started_at=values["started_at"],
            finished_at=values["finished_at"],
            status_code=values["status_code"],
            reason=values["reason"],
            outputs={n: StoredOutput.from_dict(o) for n, o in values["outputs"].items()},
            input_override=values["input_override"],
        )


def step_idempotency_key(
    run_id: UUID, step_id: str, generation: int, *, compensation: bool = False
) -> str:
    """``wf:<run>:<step>``, ``:r<generation>`` from generation 2, ``:compensate`` for the
    step's compensation."""
    key = f"wf:{run_id}:{step_id}"
    if generation > 1:
        key += f":r{generation}"
    return f"{key}:compensate" if compensation else key


def workflow_origin(run_id: UUID) -> str:
    return f"{WORKFLOW_ORIGIN}{run_id}"
