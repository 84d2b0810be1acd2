"""A run's next moves, from its definition and the state of each step: pure, no I/O.

- A pending step whose needs all succeeded is ready; its ``when`` decides whether it
  starts or is skipped (``when_skips``). Independent ready steps start side by side.
- A pending step that needs a failed, skipped or cancelled step is skipped, with the reason
  (``dependency_failed:<id>`` ...); the skip carries on down the graph at once.
- A failed step's ``on_failure`` (its own, or the run's default) decides for the run:
  ``continue``: only what needs it is skipped, other branches go on; ``fail_fast``: the
  run halts: nothing new starts, pending steps are cancelled, running ones finish;
  ``compensate``: halts the same way, then, once nothing runs, the succeeded steps that have
  a ``compensate`` request are compensated in reverse order of completion (when any failed
  step asks for it; the run then fails once they are done).
- Once nothing runs and nothing is left to start, the run is settled: failed if a step
  failed, cancelled if a step was cancelled (a run cancelled by hand), else succeeded.
- Retrying a failed run from its failed steps (``steps_to_retry``) sets them, and the steps
  skipped or cancelled because of them, pending again; succeeded steps keep their outputs.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from domain.workflow_definition import WorkflowDefinition
from domain.workflow_expressions import evaluate
from domain.workflow_step import OnFailure, Step


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


FINISHED = frozenset(
    {StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED}
)


class RunOutcome(StrEnum):
    RUNNING = "running"  # steps run or are left to start
    COMPENSATING = "compensating"  # halted by a step whose on_failure is compensate
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class SkipKind(StrEnum):
    WHEN_FALSE = "when_false"
    DEPENDENCY_FAILED = "dependency_failed"
    DEPENDENCY_SKIPPED = "dependency_skipped"
    DEPENDENCY_CANCELLED = "dependency_cancelled"


_SKIP_BY_STATE = {
    StepState.FAILED: SkipKind.DEPENDENCY_FAILED,
    StepState.SKIPPED: SkipKind.DEPENDENCY_SKIPPED,
    StepState.CANCELLED: SkipKind.DEPENDENCY_CANCELLED,
}


@dataclass(frozen=True)
class SkipReason:
    kind: SkipKind
    step: str | None = None  # the step needed, for a dependency's reason

    def __str__(self) -> str:  # as recorded: "when_false", "dependency_failed:auth"
        return self.kind.value if self.step is None else f"{self.kind.value}:{self.step}"


@dataclass(frozen=True)
class Moves:
    """What to record next; ``start`` steps still have their ``when`` to pass."""

    outcome: RunOutcome
    start: tuple[str, ...] = ()
    skip: Mapping[str, SkipReason] = field(default_factory=dict)
    cancel: tuple[str, ...] = ()
    halted_by: str | None = None
    compensate: tuple[str, ...] = ()  # in order, once the outcome is COMPENSATING


States = Mapping[str, StepState]


def state_of(states: States, step_id: str) -> StepState:
    return StepState(states.get(step_id, StepState.PENDING))


def execution_order(definition: WorkflowDefinition) -> tuple[str, ...]:
    """Every step after those it needs; among free steps, the first declared first."""
    return definition.order  # computed once a definition


def halted_by(definition: WorkflowDefinition, states: States) -> str | None:
    """The first declared failed step whose failure halts the run (fail_fast, compensate)."""
    for step in definition.steps:
        if state_of(states, step.id) is StepState.FAILED and step.on_failure in (
            OnFailure.FAIL_FAST,
            OnFailure.COMPENSATE,
        ):
            return step.id
    return None


def _compensates(definition: WorkflowDefinition, states: States) -> bool:
    """Did a step whose on_failure is compensate fail (with others that halt, or alone)?"""
    return any(
        state_of(states, step.id) is StepState.FAILED and step.on_failure is OnFailure.COMPENSATE
        for step in definition.steps
    )


def steps_to_retry(
    definition: WorkflowDefinition, states: States, skipped: Mapping[str, SkipReason]
) -> tuple[str, ...]:
    """A failed run retried from its failed steps: the steps to set pending again (failed,
    cancelled, or skipped for a need that did not succeed). Succeeded steps keep their
    outputs; a step skipped by its own ``when`` stays skipped (its needs' values stand)."""
    return tuple(
        step.id
        for step in definition.steps
        if state_of(states, step.id) in (StepState.FAILED, StepState.CANCELLED)
        or (
            state_of(states, step.id) is StepState.SKIPPED
            and step.id in skipped
            and skipped[step.id].kind is not SkipKind.WHEN_FALSE
        )
    )


def ready_steps(definition: WorkflowDefinition, states: States) -> tuple[str, ...]:
    """Pending steps whose needs all succeeded (none while the run is halted)."""
    if halted_by(definition, states) is not None:
        return ()
    return tuple(
        step_id
        for step_id in execution_order(definition)
        if state_of(states, step_id) is StepState.PENDING
        and all(state_of(states, n) is StepState.SUCCEEDED for n in definition.needs[step_id])
    )


def blocked_steps(definition: WorkflowDefinition, states: States) -> dict[str, SkipReason]:
    """Pending steps to skip because a step they need will not succeed, transitively (the
    first such need, in the order the step lists them, is the reason)."""
    settled: dict[str, StepState] = {
        step.id: state_of(states, step.id) for step in definition.steps
    }
    skipped: dict[str, SkipReason] = {}
    for step_id in execution_order(definition):
        if settled[step_id] is not StepState.PENDING:
            continue
        for needed in definition.needs[step_id]:
            kind = _SKIP_BY_STATE.get(settled[needed])
            if kind is not None:
                skipped[step_id] = SkipReason(kind, needed)
                settled[step_id] = StepState.SKIPPED
                break
    return skipped


def next_moves(
    definition: WorkflowDefinition, states: States, completion_order: Sequence[str] = ()
) -> Moves:
    """The run's next moves; ``completion_order``: steps in the order they finished."""
    halting = halted_by(definition, states)
    running = any(state_of(states, s.id) is StepState.RUNNING for s in definition.steps)
    if halting is not None:
        cancel = tuple(
            s.id for s in definition.steps if state_of(states, s.id) is StepState.PENDING
        )
        if running:
            return Moves(RunOutcome.RUNNING, cancel=cancel, halted_by=halting)
        if _compensates(definition, states):
            order = compensation_order(definition, states, completion_order)
            return Moves(
                RunOutcome.COMPENSATING, cancel=cancel, halted_by=halting, compensate=order
            )
        return Moves(RunOutcome.FAILED, cancel=cancel, halted_by=halting)
    skip = blocked_steps(definition, states)
    start = ready_steps(definition, states)
    if running or start:
        return Moves(RunOutcome.RUNNING, start, skip)
    after = {s.id: state_of(states, s.id) for s in definition.steps}
    after.update(dict.fromkeys(skip, StepState.SKIPPED))
    return Moves(settled_outcome(after.values()), start, skip)


def settled_outcome(states: Iterable[StepState]) -> RunOutcome:
    """The outcome of a run none of whose steps is left to run."""
    values = set(states)
    if StepState.FAILED in values:
        return RunOutcome.FAILED
    if StepState.CANCELLED in values:
        return RunOutcome.CANCELLED
    return RunOutcome.SUCCEEDED


def compensation_order(
    definition: WorkflowDefinition, states: States, completion_order: Sequence[str]
) -> tuple[str, ...]:
    """Succeeded steps with a ``compensate`` request, the last to finish first."""
    return tuple(
        step_id
        for step_id in reversed(list(dict.fromkeys(completion_order)))
        if step_id in definition.needs
        and state_of(states, step_id) is StepState.SUCCEEDED
        and definition.step(step_id).compensate is not None
    )


def when_skips(step: Step, context: Mapping[str, object]) -> SkipReason | None:
    """A ready step's ``when``: None when it starts, the reason when it is skipped."""
    if step.when is None or evaluate(step.when, context):
        return None
    return SkipReason(SkipKind.WHEN_FALSE)


def response_succeeds(step: Step, status: int, context: Mapping[str, object]) -> bool:
    """Does this response make the attempt a success? ``success`` when given (the context
    holds the response), else a 2xx status, as for a call."""
    if step.success is None:
        return 200 <= status < 300
    return evaluate(step.success, context)
