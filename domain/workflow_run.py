"""The WorkflowRun aggregate: one run of a workflow definition, its steps being service calls.

It never makes a request: ``advance`` works out the run's next moves (``next_moves``) from
the recorded step states and returns ``StepOrder``s, the calls the application submits
(idempotency key ``wf:<run id>:<step id>``, origin ``workflow:<run id>``); each call's
terminal outcome comes back as a message (``record_step_outcome``), which decides the step
by its ``success`` expression and stores its outputs. Events say why: a step started,
skipped (and the reason), failed (and the reason: a status, a template reading a missing
output), cancelled; a compensation; a retry; a re-run by hand with its edited input.

The definition is recorded as given (its JSON) and parsed again, deterministically, when a
loaded run first needs it; a step's rendered request is not recorded (it may hold secret
values the application seals in the call), and ``running_orders`` renders it again, the
same, from the recorded values.

Public commands check the rules and compute values; the private ``@event`` methods only
assign. A duplicate or late message is a no-op: the command returns ``False`` (or nothing)
and records nothing.

One module over 300 lines on purpose, as ``Schedule``: the aggregate with all its events.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from eventsourcing.domain import Snapshot as AggregateSnapshot

from domain.errors import InvalidRequestError
from domain.request import DEFAULT_MAX_BODY_BYTES, RequestSpec, check_body_size
from domain.status import Status
from domain.workflow_dag import (
    FINISHED,
    Moves,
    RunOutcome,
    SkipKind,
    SkipReason,
    StepState,
    next_moves,
    response_succeeds,
    settled_outcome,
    steps_to_retry,
    when_skips,
)
from domain.workflow_definition import (
    DEFAULT_MAX_STEPS,
    HARD_MAX_STEPS,
    WorkflowDefinition,
    parse_definition,
)
from domain.workflow_outputs import (
    StoredOutput,
    extract_outputs,
    response_document,
    stored_outputs,
    usable_outputs,
)
from domain.workflow_paths import Reveal, evaluation_context
from domain.workflow_run_status import (
    ADVANCING,
    CALL_CANCELLED,
    RUN_CANCELLED,
    TERMINAL,
    CompensationOutcome,
    RunStatus,
    StepOrder,
    StepRun,
    WorkflowRunTransitionError,
    step_idempotency_key,
    workflow_origin,
)
from domain.workflow_secret_values import (
    NO_SECRETS,
    Secrets,
    in_context,
    redacted,
    revealer,
    sealed_input,
    sealing,
    with_secret_defaults,
)
from domain.workflow_step_request import StepRequest, render_request
from domain.workflow_templates import check_json_value
from domain.workflow_tokens import shown

__all__ = [
    "RunStatus",
    "StepOrder",
    "StepRun",
    "WorkflowRun",
    "WorkflowRunTransitionError",
]

_CALL_OUTCOMES = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})
NewCallId = Callable[[str], UUID]  # the call id for an order, given its idempotency key


class WorkflowRun(Aggregate):
    TOPIC = "duecall:WorkflowRun"

    class Event(Aggregate.Event):
        TOPIC = "duecall:WorkflowRun.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "duecall:WorkflowRun.Created"
        tenant_id: str
        name: str
        definition: dict[str, Any]  # as given; parsed again when loaded
        definition_version: int | None  # of a stored definition; None: given inline
        input: dict[str, Any]  # the run's own; laid over the definition's
        submitted_at: datetime
        origin: str | None  # its producer: "schedule:<id>" for a schedule's fire; None: the API
        idempotency_key: str | None  # a schedule's fire's: sched:<schedule id>:<nominal UTC>

    class Snapshot(AggregateSnapshot):
        """The run's state in plain values (steps as dicts); the parsed definition is not
        kept: it is parsed again from its JSON."""

        TOPIC = "duecall:WorkflowRun.Snapshot"

        @classmethod
        def take(cls, aggregate: Any) -> "WorkflowRun.Snapshot":
            snapshot = super().take(aggregate)
            snapshot.state.pop("definition", None)  # the cached parse
            snapshot.state.update(
                status=aggregate.status.value,
                paused_from=aggregate.paused_from and aggregate.paused_from.value,
                steps={k: v.as_dict() for k, v in aggregate.steps.items()},
                compensations={k: v.as_dict() for k, v in aggregate.compensations.items()},
            )
            return snapshot

        def mutate(self, _: None) -> Any:
            run: Any = super().mutate(None)
            run.status = RunStatus(run.status)
            run.paused_from = run.paused_from and RunStatus(run.paused_from)
            run.steps = {k: StepRun.from_dict(v) for k, v in run.steps.items()}
            run.compensations = {k: StepRun.from_dict(v) for k, v in run.compensations.items()}
            return run

    @event(Created)
    def __init__(
        self,
        id: UUID,
        tenant_id: str,
        name: str,
        definition: dict[str, Any],
        definition_version: int | None,
        input: dict[str, Any],
        submitted_at: datetime,
        origin: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.origin = origin  # told of the run's outcome when it ends (a schedule)
        self.idempotency_key = idempotency_key
        self.name = name
        self.definition_json = definition
        self.definition_version = definition_version
        self.input = input
        self.submitted_at = submitted_at
        self.status = RunStatus.PENDING
        self.paused_from: RunStatus | None = None  # the status a resume goes back to
        self.steps: dict[str, StepRun] = {s["id"]: StepRun() for s in definition["steps"]}
        self.completion_order: list[str] = []  # steps, the last to finish last
        self.compensations: dict[str, StepRun] = {}
        self.halted_by: str | None = None
        self.compensation: str | None = None  # a CompensationOutcome, once compensated
        self.rerunning: str | None = None  # the step a re-run by hand runs
        self.started_at: datetime | None = None  # the first step ordered
        self.finished_at: datetime | None = None
        self.cancel_reason: str | None = None

    @classmethod
    def submit(
        cls,
        *,
        id: UUID,
        tenant_id: str,
        definition: Mapping[str, Any],
        input: Mapping[str, Any] | None = None,
        now: datetime,
        definition_version: int | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        origin: str | None = None,
        idempotency_key: str | None = None,
        secrets: Secrets = NO_SECRETS,
    ) -> "WorkflowRun":
        """A new run of ``definition`` (its JSON, checked here against ``max_steps``, the
        deployment's limit) with ``input`` laid over the definition's; ``origin``: the
        producer that started it (a schedule), told of its outcome, with the fire's
        ``idempotency_key``. The values of ``secret_input`` keys (the definition's and the
        run's) are sealed with ``secrets`` before ``Created`` records them."""
        values = with_secret_defaults(json_copy(definition, "definition"), sealing(secrets.seal))
        parsed = parse_definition(values, max_steps)
        run_input = json_copy(input or {}, "input")
        check_json_value(run_input, "input")
        run_input = sealed_input(run_input, parsed.secret_input, secrets.seal)
        run = cls(
            id=id,
            tenant_id=tenant_id,
            name=parsed.name,
            definition=values,
            definition_version=definition_version,
            input=run_input,
            submitted_at=now,
            origin=origin,
            idempotency_key=idempotency_key,
        )
        run.__dict__["definition"] = parsed  # the cache ``definition`` would fill
        return run

    @cached_property
    def definition(self) -> WorkflowDefinition:
        """The parsed definition (parsing is deterministic; the limit was checked at
        submit, so the hard cap here), shared by the runs loaded with the same JSON."""
        return _parsed(json.dumps(self.definition_json, separators=(",", ":")))

    @property
    def states(self) -> dict[str, StepState]:
        return {step_id: record.state for step_id, record in self.steps.items()}

    # --- commands -----------------------------------------------------------------------

    def advance(
        self,
        now: datetime,
        new_call_id: NewCallId,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        secrets: Secrets = NO_SECRETS,
    ) -> list[StepOrder]:
        """Record the run's next moves: the calls to submit now. Skips, failures found
        before a call (a ``when`` or template reading an unusable output, a request that
        does not render) and cancels are recorded as they come, until nothing more moves;
        a settled run records its outcome. Nothing happens to a paused or finished run.
        ``secrets`` opens the secret values secret headers read (the orders' requests
        hold them in clear: the application seals those headers on the calls)."""
        if self.status not in ADVANCING:
            return []
        reveal = revealer(secrets.open)
        if self.rerunning is not None:
            return self._advance_rerun(self.rerunning, now, new_call_id, max_body_bytes, reveal)
        orders: list[StepOrder] = []
        while True:
            moves = next_moves(self.definition, self.states, self.completion_order)
            changed = False
            for step_id, reason in moves.skip.items():
                self._step_skipped(
                    step=step_id,
                    reason=str(reason),
                    generation=self.steps[step_id].generation,
                    skipped_at=now,
                )
                changed = True
            for step_id in moves.cancel:
                self._step_cancelled(
                    step=step_id,
                    reason=f"halted_by:{moves.halted_by}",
                    generation=self.steps[step_id].generation,
                    cancelled_at=now,
                )
                changed = True
            for step_id in moves.start:
                order = self._start_step(
                    step_id, now, new_call_id, max_body_bytes, when=True, reveal=reveal
                )
                if order is None:
                    changed = True
                else:
                    orders.append(order)
            if not changed:
                break
        return orders + self._settle(moves, now, new_call_id, max_body_bytes, reveal)

    def record_step_outcome(
        self,
        call_id: UUID,
        status: str,
        status_code: int | None,
        headers: Mapping[str, str],
        body: str | None,
        now: datetime,
        error_kind: str | None = None,
        secrets: Secrets = NO_SECRETS,
    ) -> bool:
        """A step's (or compensation's) call is terminal: ``status`` its status (succeeded,
        failed, cancelled), with its last response (``body``: its text, bounded by the
        caller). The step's ``success`` (default: a 2xx status) decides, so a call that
        failed on a 404 may be a step that succeeded; its secret outputs are sealed with
        ``secrets``. An unknown call, or one of an earlier generation, is a no-op (False)."""
        if status not in _CALL_OUTCOMES:
            raise InvalidRequestError("status", f"must be one of {sorted(_CALL_OUTCOMES)}")
        for step_id, record in self.steps.items():
            if record.call_id == call_id and record.state is StepState.RUNNING:
                self._step_outcome(
                    step_id, call_id, record, status, status_code, headers, body, now, error_kind,
                    secrets.seal,
                )
                return True
        for step_id, record in self.compensations.items():
            if record.call_id == call_id and record.state is StepState.RUNNING:
                self._compensation_outcome(
                    step_id, call_id, record, status, status_code, now, error_kind
                )
                return True
        return False

    def running_orders(
        self, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, secrets: Secrets = NO_SECRETS
    ) -> list[StepOrder]:
        """The orders of the calls running now, made again (the same call ids, keys and
        requests, rendered from the same recorded values): for an application that lost
        them before they were submitted."""
        orders = []
        reveal = revealer(secrets.open)
        for step_id, record in self.steps.items():
            if record.state is StepState.RUNNING and record.call_id is not None:
                orders.append(
                    self._order(step_id, record, max_body_bytes, compensation=False, reveal=reveal)
                )
        for step_id, record in self.compensations.items():
            if record.state is StepState.RUNNING and record.call_id is not None:
                orders.append(
                    self._order(step_id, record, max_body_bytes, compensation=True, reveal=reveal)
                )
        return orders

    def cancel(self, reason: str | None, now: datetime) -> list[UUID]:
        """Stop the run: no step starts; the calls still running are returned, for the
        application to cancel (their outcomes are then no-ops). Cancelling a cancelled run
        changes nothing."""
        if self.status == RunStatus.CANCELLED:
            return []
        if self.status in TERMINAL:
            raise WorkflowRunTransitionError("cancel", self.status)
        steps = [s for s, record in self.steps.items() if record.state not in FINISHED]
        running = [
            record.call_id
            for record in (*self.steps.values(), *self.compensations.values())
            if record.state is StepState.RUNNING and record.call_id is not None
        ]
        self._cancelled(reason=reason, steps=steps, call_ids=running, cancelled_at=now)
        return running

    def pause(self, now: datetime) -> bool:
        """Order no new step; running ones finish and are recorded."""
        if self.status == RunStatus.PAUSED:
            return False
        if self.status not in (RunStatus.PENDING, RunStatus.RUNNING):
            raise WorkflowRunTransitionError("pause", self.status)
        self._paused(previous=self.status.value, paused_at=now)
        return True

    def resume(self, now: datetime) -> bool:
        """Back to the status paused; the application then calls ``advance``."""
        if self.status in TERMINAL:
            raise WorkflowRunTransitionError("resume", self.status)
        if self.status != RunStatus.PAUSED:
            return False
        self._resumed(status=(self.paused_from or RunStatus.RUNNING).value, resumed_at=now)
        return True

    def retry_from_failed(self, now: datetime) -> tuple[str, ...]:
        """A failed run again from its failed steps: they, and the steps skipped or
        cancelled because of them, are pending again, a generation on (a new key each);
        succeeded steps keep their outputs. A compensated run is not retried (what its
        steps did was undone)."""
        if self.status != RunStatus.FAILED:
            raise WorkflowRunTransitionError("retry", self.status)
        if self.compensations:
            raise WorkflowRunTransitionError("retry", "failed and compensated")
        skipped = {s: r.reason for s, r in self.steps.items() if r.state is StepState.SKIPPED}
        retried = steps_to_retry(self.definition, self.states, _skip_reasons(skipped))
        self._retry_requested(
            steps=list(retried),
            generations=[self.steps[s].generation + 1 for s in retried],
            requested_at=now,
        )
        return retried

    def rerun_step(
        self,
        step_id: str,
        input_override: Mapping[str, Any],
        actor: str,
        now: datetime,
        secrets: Secrets = NO_SECRETS,
    ) -> int:
        """Run one settled step of a finished run again, alone (nothing after it runs), with
        ``input_override`` laid over the run's input; its ``when`` is not asked. Recorded
        with the edited input (``secret_input`` values sealed with ``secrets``) and who
        asked. Returns the step's new generation; the application then calls ``advance``.
        The run's status follows once it is done."""
        if step_id not in self.steps:
            raise InvalidRequestError("step_id", f"no step {shown(step_id)} in this run")
        if self.status not in TERMINAL:
            raise WorkflowRunTransitionError("re-run a step of", self.status)
        if self.steps[step_id].state not in FINISHED:  # never, in a finished run
            raise WorkflowRunTransitionError("re-run a step of", self.status)
        values = json_copy(input_override, "input")
        check_json_value(values, "input")
        values = sealed_input(values, self.definition.secret_input, secrets.seal)
        generation = self.steps[step_id].generation + 1
        self._step_rerun_requested(
            step=step_id,
            input=values,
            actor=actor,
            generation=generation,
            requested_at=now,
        )
        return generation

    # --- what the commands compute ------------------------------------------------------

    def _context(
        self,
        input_override: Mapping[str, Any] | None = None,
        response: Mapping[str, object] | None = None,
    ) -> dict[str, object]:
        """What templates and expressions read: the input, and each step's state, status
        and usable outputs (a step's fields see only the steps it needs)."""
        return evaluation_context(
            input_values=in_context(
                {**self.definition.input, **self.input, **(input_override or {})},
                self.definition.secret_input,
            ),
            run_id=str(self.id),
            run_name=self.name,
            steps={
                step_id: {
                    "state": record.state.value,
                    "status": record.status_code,
                    "outputs": usable_outputs(record.outputs),
                }
                for step_id, record in self.steps.items()
            },
            response=response,
        )

    def _render(
        self,
        step_id: str,
        context: Mapping[str, object],
        max_body_bytes: int,
        *,
        compensation: bool,
        reveal: Reveal | None,
    ) -> RequestSpec:
        step = self.definition.step(step_id)
        if compensation:
            assert step.compensate is not None  # only steps with one are compensated
            field = f"steps[{step_id}].compensate.request"
            return render_checked(
                step.compensate.request, context, field, max_body_bytes, reveal
            )
        field = f"steps[{step_id}].request"
        return render_checked(step.request, context, field, max_body_bytes, reveal)

    def _order(
        self,
        step_id: str,
        record: StepRun,
        max_body_bytes: int,
        *,
        compensation: bool,
        reveal: Reveal | None,
    ) -> StepOrder:
        """The order of a step's (compensation's) call recorded as started, rendered."""
        context = self._context(self.steps[step_id].input_override)
        request = self._render(
            step_id, context, max_body_bytes, compensation=compensation, reveal=reveal
        )
        return self._make_order(step_id, record, request, compensation=compensation)

    def _make_order(
        self, step_id: str, record: StepRun, request: RequestSpec, *, compensation: bool
    ) -> StepOrder:
        step = self.definition.step(step_id)
        policy = step.retry_policy
        if compensation and step.compensate is not None:
            policy = step.compensate.retry_policy
        assert record.call_id is not None
        assert record.idempotency_key is not None
        return StepOrder(
            step_id=step_id,
            call_id=record.call_id,
            idempotency_key=record.idempotency_key,
            request=request,
            retry_policy=policy,
            timeout_seconds=None if compensation else step.timeout_seconds,
            generation=record.generation,
            origin=workflow_origin(self.id),
            compensation=compensation,
            seal_response=not compensation and bool(step.secret_outputs),
        )

    def _start_step(
        self,
        step_id: str,
        now: datetime,
        new_call_id: NewCallId,
        max_body_bytes: int,
        *,
        when: bool,
        reveal: Reveal | None,
    ) -> StepOrder | None:
        """Start a ready step: its order, or None when it was skipped (its ``when``) or
        failed before a call (recorded)."""
        record = self.steps[step_id]
        generation = record.generation
        context = self._context(record.input_override)
        try:
            skip = when_skips(self.definition.step(step_id), context) if when else None
            if skip is not None:
                self._step_skipped(
                    step=step_id, reason=str(skip), generation=generation, skipped_at=now
                )
                return None
            request = self._render(
                step_id, context, max_body_bytes, compensation=False, reveal=reveal
            )
        except InvalidRequestError as error:
            self._step_failed(
                step=step_id,
                reason=str(error),
                call_id=None,
                status_code=None,
                generation=generation,
                failed_at=now,
                duration_ms=None,
            )
            return None
        key = step_idempotency_key(self.id, step_id, generation)
        self._step_started(
            step=step_id,
            call_id=new_call_id(key),
            idempotency_key=key,
            generation=generation,
            started_at=now,
        )
        return self._make_order(step_id, self.steps[step_id], request, compensation=False)

    def _settle(
        self,
        moves: Moves,
        now: datetime,
        new_call_id: NewCallId,
        max_body_bytes: int,
        reveal: Reveal | None,
    ) -> list[StepOrder]:
        """The run's outcome, once nothing moves: compensations first, if asked for."""
        if moves.outcome is RunOutcome.RUNNING:
            return []
        if moves.outcome is RunOutcome.COMPENSATING:
            return self._compensate(moves, now, new_call_id, max_body_bytes, reveal)
        if moves.outcome is RunOutcome.SUCCEEDED:
            self._succeeded(finished_at=now)
        elif moves.outcome is RunOutcome.FAILED:
            self._failed(
                halted_by=moves.halted_by,
                failed_steps=self._failed_steps(),
                compensation=None,
                finished_at=now,
            )
        else:
            self._cancelled(reason="step_cancelled", steps=[], call_ids=[], cancelled_at=now)
        return []

    def _compensate(
        self,
        moves: Moves,
        now: datetime,
        new_call_id: NewCallId,
        max_body_bytes: int,
        reveal: Reveal | None,
    ) -> list[StepOrder]:
        """One compensation at a time, the last step to succeed first; then the run fails."""
        if any(r.state is StepState.RUNNING for r in self.compensations.values()):
            return []
        for step_id in moves.compensate:
            if step_id in self.compensations:
                continue
            generation = self.steps[step_id].generation
            context = self._context(self.steps[step_id].input_override)
            try:
                request = self._render(
                    step_id, context, max_body_bytes, compensation=True, reveal=reveal
                )
            except InvalidRequestError as error:
                self._compensation_failed(
                    step=step_id,
                    call_id=None,
                    status_code=None,
                    reason=str(error),
                    generation=generation,
                    failed_at=now,
                )
                continue
            key = step_idempotency_key(self.id, step_id, generation, compensation=True)
            self._compensation_started(
                step=step_id,
                call_id=new_call_id(key),
                idempotency_key=key,
                generation=generation,
                halted_by=moves.halted_by,
                started_at=now,
            )
            record = self.compensations[step_id]
            return [self._make_order(step_id, record, request, compensation=True)]
        failed = any(r.state is not StepState.SUCCEEDED for r in self.compensations.values())
        outcome = CompensationOutcome.INCOMPLETE if failed else CompensationOutcome.COMPENSATED
        self._failed(
            halted_by=moves.halted_by,
            failed_steps=self._failed_steps(),
            compensation=outcome.value if self.compensations else None,
            finished_at=now,
        )
        return []

    def _advance_rerun(
        self,
        step_id: str,
        now: datetime,
        new_call_id: NewCallId,
        max_body_bytes: int,
        reveal: Reveal | None,
    ) -> list[StepOrder]:
        """A re-run by hand: order the step; once it is done, the run's status follows
        from its steps' (no halt, no compensation: one step ran, alone)."""
        record = self.steps[step_id]
        if record.state is StepState.PENDING:
            order = self._start_step(
                step_id, now, new_call_id, max_body_bytes, when=False, reveal=reveal
            )
            if order is not None:
                return [order]
        elif record.state is StepState.RUNNING:
            return []
        outcome = settled_outcome(self.states.values())
        if outcome is RunOutcome.SUCCEEDED:
            self._succeeded(finished_at=now)
        elif outcome is RunOutcome.FAILED:
            self._failed(
                halted_by=step_id if self.steps[step_id].state is StepState.FAILED else None,
                failed_steps=self._failed_steps(),
                compensation=self.compensation,
                finished_at=now,
            )
        else:
            self._cancelled(reason="step_cancelled", steps=[], call_ids=[], cancelled_at=now)
        return []

    def _step_outcome(
        self,
        step_id: str,
        call_id: UUID,
        record: StepRun,
        status: str,
        status_code: int | None,
        headers: Mapping[str, str],
        body: str | None,
        now: datetime,
        error_kind: str | None,
        seal: Callable[[str], str],
    ) -> None:
        generation = record.generation
        duration_ms = _duration_ms(record.started_at, now)
        if status == Status.CANCELLED:
            self._step_cancelled(
                step=step_id, reason=CALL_CANCELLED, generation=generation, cancelled_at=now
            )
            return
        reason: str | None
        outputs: dict[str, Any] = {}
        if status_code is None:
            reason = f"call {status}: {error_kind or 'no response'}"
        else:
            step = self.definition.step(step_id)
            document = response_document(status_code, headers, _body_value(body))
            try:
                context = self._context(record.input_override, document)
                if response_succeeds(step, status_code, context):
                    field = f"steps[{step_id}].outputs"
                    values = extract_outputs(step.outputs, document, field)
                    stored = stored_outputs(
                        values, secret=step.secret_outputs, seal=seal
                    )  # its secret ones sealed before the event records them
                    outputs = {n: o.as_dict() for n, o in stored.items()}
                    reason = None
                else:
                    reason = f"status {status_code} is not a success"
                    if step.success is not None:
                        reason += f" ({step.success.text})"
            except InvalidRequestError as error:  # an unusable value read, an output query
                reason = str(error)
        if reason is None:
            self._step_succeeded(
                step=step_id,
                call_id=call_id,
                status_code=status_code,
                outputs=outputs,
                generation=generation,
                succeeded_at=now,
                duration_ms=duration_ms,
            )
        else:
            self._step_failed(
                step=step_id,
                reason=reason,
                call_id=call_id,
                status_code=status_code,
                generation=generation,
                failed_at=now,
                duration_ms=duration_ms,
            )

    def _compensation_outcome(
        self,
        step_id: str,
        call_id: UUID,
        record: StepRun,
        status: str,
        status_code: int | None,
        now: datetime,
        error_kind: str | None,
    ) -> None:
        """A compensation succeeds on its call's success (a compensation has no
        ``success`` expression)."""
        if status == Status.SUCCEEDED:
            self._compensated(
                step=step_id,
                call_id=call_id,
                status_code=status_code,
                generation=record.generation,
                compensated_at=now,
                duration_ms=_duration_ms(record.started_at, now),
            )
        else:
            detail = status_code if status_code is not None else error_kind or "no response"
            self._compensation_failed(
                step=step_id,
                call_id=call_id,
                status_code=status_code,
                reason=f"call {status}: {detail}",
                generation=record.generation,
                failed_at=now,
            )

    def _failed_steps(self) -> list[str]:
        return [s for s, r in self.steps.items() if r.state is StepState.FAILED]

    # --- events: they only assign -------------------------------------------------------

    def _finish_step(self, step: str, record: StepRun) -> None:
        self.steps[step] = record
        self.completion_order = [s for s in self.completion_order if s != step] + [step]

    @event("StepStarted", topic="duecall:WorkflowRun.StepStarted")
    def _step_started(
        self,
        step: str,
        call_id: UUID,
        idempotency_key: str,
        generation: int,
        started_at: datetime,
    ) -> None:
        self.steps[step] = replace(
            self.steps[step],
            state=StepState.RUNNING,
            generation=generation,
            call_id=call_id,
            idempotency_key=idempotency_key,
            started_at=started_at,
            finished_at=None,
            status_code=None,
            reason=None,
            outputs={},
        )
        if self.status == RunStatus.PENDING:
            self.status = RunStatus.RUNNING
        if self.started_at is None:
            self.started_at = started_at

    @event("StepSkipped", topic="duecall:WorkflowRun.StepSkipped")
    def _step_skipped(self, step: str, reason: str, generation: int, skipped_at: datetime) -> None:
        self._finish_step(
            step,
            replace(
                self.steps[step],
                state=StepState.SKIPPED,
                generation=generation,
                reason=reason,
                call_id=None,
                idempotency_key=None,
                started_at=None,
                finished_at=skipped_at,
                status_code=None,
                outputs={},
            ),
        )

    @event("StepSucceeded", topic="duecall:WorkflowRun.StepSucceeded")
    def _step_succeeded(
        self,
        step: str,
        call_id: UUID,
        status_code: int | None,
        outputs: dict[str, Any],
        generation: int,
        succeeded_at: datetime,
        duration_ms: float | None,
    ) -> None:
        self._finish_step(
            step,
            replace(
                self.steps[step],
                state=StepState.SUCCEEDED,
                status_code=status_code,
                finished_at=succeeded_at,
                reason=None,
                outputs={name: StoredOutput.from_dict(o) for name, o in outputs.items()},
            ),
        )

    @event("StepFailed", topic="duecall:WorkflowRun.StepFailed")
    def _step_failed(
        self,
        step: str,
        reason: str,
        call_id: UUID | None,
        status_code: int | None,
        generation: int,
        failed_at: datetime,
        duration_ms: float | None,
    ) -> None:
        before = self.steps[step]
        self._finish_step(
            step,
            replace(
                before,
                state=StepState.FAILED,
                status_code=status_code,
                finished_at=failed_at,
                reason=reason,
                outputs={},
                started_at=before.started_at if call_id else None,
                call_id=call_id,
                idempotency_key=before.idempotency_key if call_id else None,
            ),
        )

    @event("StepCancelled", topic="duecall:WorkflowRun.StepCancelled")
    def _step_cancelled(
        self, step: str, reason: str, generation: int, cancelled_at: datetime
    ) -> None:
        self._finish_step(
            step,
            replace(
                self.steps[step],
                state=StepState.CANCELLED,
                finished_at=cancelled_at,
                reason=reason,
                outputs={},
            ),
        )

    @event("CompensationStarted", topic="duecall:WorkflowRun.CompensationStarted")
    def _compensation_started(
        self,
        step: str,
        call_id: UUID,
        idempotency_key: str,
        generation: int,
        halted_by: str | None,
        started_at: datetime,
    ) -> None:
        self.compensations[step] = StepRun(
            StepState.RUNNING, generation, call_id, idempotency_key, started_at
        )
        self.status = RunStatus.COMPENSATING
        self.halted_by = halted_by

    @event("Compensated", topic="duecall:WorkflowRun.Compensated")
    def _compensated(
        self,
        step: str,
        call_id: UUID,
        status_code: int | None,
        generation: int,
        compensated_at: datetime,
        duration_ms: float | None,
    ) -> None:
        self.compensations[step] = replace(
            self.compensations[step],
            state=StepState.SUCCEEDED,
            status_code=status_code,
            finished_at=compensated_at,
        )

    @event("CompensationFailed", topic="duecall:WorkflowRun.CompensationFailed")
    def _compensation_failed(
        self,
        step: str,
        call_id: UUID | None,
        status_code: int | None,
        reason: str,
        generation: int,
        failed_at: datetime,
    ) -> None:
        before = self.compensations.get(step, StepRun(generation=generation))
        self.compensations[step] = replace(
            before,
            state=StepState.FAILED,
            status_code=status_code,
            finished_at=failed_at,
            reason=reason,
        )

    @event("Succeeded", topic="duecall:WorkflowRun.Succeeded")
    def _succeeded(self, finished_at: datetime) -> None:
        self.status = RunStatus.SUCCEEDED
        self.finished_at = finished_at
        self.rerunning = None

    @event("Failed", topic="duecall:WorkflowRun.Failed")
    def _failed(
        self,
        halted_by: str | None,
        failed_steps: list[str],
        compensation: str | None,
        finished_at: datetime,
    ) -> None:
        self.status = RunStatus.FAILED
        self.halted_by = halted_by
        self.compensation = compensation
        self.finished_at = finished_at
        self.rerunning = None

    @event("Cancelled", topic="duecall:WorkflowRun.Cancelled")
    def _cancelled(
        self, reason: str | None, steps: list[str], call_ids: list[UUID], cancelled_at: datetime
    ) -> None:
        for step in steps:
            self._finish_step(
                step,
                replace(
                    self.steps[step],
                    state=StepState.CANCELLED,
                    finished_at=cancelled_at,
                    reason=RUN_CANCELLED,
                ),
            )
        for step, record in self.compensations.items():
            if record.state is StepState.RUNNING:
                self.compensations[step] = replace(
                    record,
                    state=StepState.CANCELLED,
                    finished_at=cancelled_at,
                    reason=RUN_CANCELLED,
                )
        self.status = RunStatus.CANCELLED
        self.cancel_reason = reason
        self.finished_at = cancelled_at
        self.rerunning = None

    @event("Paused", topic="duecall:WorkflowRun.Paused")
    def _paused(self, previous: str, paused_at: datetime) -> None:
        self.paused_from = RunStatus(previous)
        self.status = RunStatus.PAUSED

    @event("Resumed", topic="duecall:WorkflowRun.Resumed")
    def _resumed(self, status: str, resumed_at: datetime) -> None:
        self.status = RunStatus(status)
        self.paused_from = None

    @event("RetryRequested", topic="duecall:WorkflowRun.RetryRequested")
    def _retry_requested(
        self, steps: list[str], generations: list[int], requested_at: datetime
    ) -> None:
        for step, generation in zip(steps, generations, strict=True):
            self.steps[step] = StepRun(
                generation=generation, input_override=self.steps[step].input_override
            )
            self.completion_order = [s for s in self.completion_order if s != step]
        self.status = RunStatus.RUNNING
        self.halted_by = None
        self.finished_at = None

    @event("StepRerunRequested", topic="duecall:WorkflowRun.StepRerunRequested")
    def _step_rerun_requested(
        self,
        step: str,
        input: dict[str, Any],
        actor: str,
        generation: int,
        requested_at: datetime,
    ) -> None:
        self.steps[step] = StepRun(generation=generation, input_override=input)
        self.rerunning = step
        self.status = RunStatus.RUNNING
        self.finished_at = None
        self.cancel_reason = None

    # --- figures ------------------------------------------------------------------------

    def _count(self, state: StepState) -> int:
        return sum(1 for record in self.steps.values() if record.state is state)

    @property
    def steps_total(self) -> int:
        return len(self.steps)

    @property
    def steps_succeeded(self) -> int:
        return self._count(StepState.SUCCEEDED)

    @property
    def steps_failed(self) -> int:
        return self._count(StepState.FAILED)

    @property
    def steps_skipped(self) -> int:
        return self._count(StepState.SKIPPED)

    @property
    def steps_cancelled(self) -> int:
        return self._count(StepState.CANCELLED)

    @property
    def duration(self) -> timedelta | None:
        """From the first step ordered to the run's end (None before either)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def step_durations(self) -> dict[str, float | None]:
        """Each step's latest generation, in seconds (None: not run, or running)."""
        return {step: record.duration_seconds for step, record in self.steps.items()}

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def log_context(self) -> dict[str, str]:
        return {"workflow_run_id": str(self.id), "tenant_id": self.tenant_id}

    def describe(self) -> dict[str, Any]:
        """The run as plain values, for the API and the CLI."""
        duration = self.duration
        return {
            "id": str(self.id),
            "tenant_id": self.tenant_id,
            "name": self.name,
            # a stored definition's name is the run's (stored under the name it carries)
            "definition_name": None if self.definition_version is None else self.name,
            "definition_version": self.definition_version,
            "origin": self.origin,
            "idempotency_key": self.idempotency_key,
            "status": self.status.value,
            "input": redacted(self.input),  # a secret value: [REDACTED]
            "halted_by": self.halted_by,
            "compensation": self.compensation,
            "cancel_reason": self.cancel_reason,
            "steps": {step: redacted(record.as_dict()) for step, record in self.steps.items()},
            "compensations": {s: r.as_dict() for s, r in self.compensations.items()},
            "counts": {
                "total": self.steps_total,
                "succeeded": self.steps_succeeded,
                "failed": self.steps_failed,
                "skipped": self.steps_skipped,
                "cancelled": self.steps_cancelled,
            },
            "duration_seconds": None if duration is None else duration.total_seconds(),
            "step_durations": self.step_durations,
            "submitted_at": self.submitted_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "created_at": self.created_on,
            "updated_at": self.modified_on,
            "version": self.version,
        }


def render_checked(
    request: StepRequest,
    context: Mapping[str, object],
    field: str,
    max_body_bytes: int,
    reveal: Reveal | None = None,
) -> RequestSpec:
    """The rendered request, its body within the deployment's limit (as a call's);
    ``reveal`` opens the secret values its secret headers read."""
    spec = render_request(request, context, field, reveal)
    try:
        check_body_size(spec.body, max_body_bytes)
    except InvalidRequestError as error:
        raise InvalidRequestError(f"{field}.body", error.message) from None
    return spec


def _skip_reasons(reasons: Mapping[str, str | None]) -> dict[str, SkipReason]:
    """Skip reasons as recorded (``dependency_failed:auth``) read back."""
    kinds = {kind.value for kind in SkipKind}
    found: dict[str, SkipReason] = {}
    for step, text in reasons.items():
        kind, _, needed = (text or "").partition(":")
        if kind in kinds:
            found[step] = SkipReason(SkipKind(kind), needed or None)
    return found


@lru_cache(maxsize=256)
def _parsed(definition: str) -> WorkflowDefinition:
    """A definition parsed once per process (a 100-step one takes some milliseconds; it is
    immutable, so runs share it): keyed by its compact JSON, in its own key order."""
    return parse_definition(json.loads(definition), HARD_MAX_STEPS)


def json_copy(values: Mapping[str, Any], field: str) -> dict[str, Any]:
    """``values`` through a JSON round trip: the very values a replay reads from the stored
    event (a definition is parsed from this copy)."""
    if not isinstance(values, Mapping):
        raise InvalidRequestError(field, "must be an object")
    try:
        copy: dict[str, Any] = json.loads(json.dumps(dict(values), allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        raise InvalidRequestError(field, "must be a JSON object") from None
    return copy


def _body_value(body: str | None) -> object:
    """A response body as output queries read it: its JSON value, or else its text."""
    if body is None:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return body


def _duration_ms(started_at: datetime | None, now: datetime) -> float | None:
    return None if started_at is None else (now - started_at).total_seconds() * 1000
