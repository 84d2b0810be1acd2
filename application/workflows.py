"""Workflows: runs of multi-step workflow definitions whose steps are service calls (the
WorkflowRun aggregate).

As schedules do, the use cases record through ``ServiceCalls`` (one writer, one event store,
one transaction per use case). A run never makes a request: ``WorkflowRun.advance`` returns
``StepOrder``s, and each becomes a ``ServiceCall`` (named ``<run name>/<step id>``, origin
``workflow:<run id>``, idempotency key ``wf:<run id>:<step id>[:r<gen>][:compensate]``, the
step's retry policy, its secret header values sealed: the definition's literal ones before
the run records it, ``domain/workflow_secrets.py``), recorded with its ``start`` message
and its key in the transaction that records the run's ``StepStarted``: a step is ordered
exactly when its call exists. The timer and the execution loop make it like any call.

A step's call that ends (succeeded, failed or cancelled) sends a ``workflow`` message with
its outcome and its final attempt's response (``application.outbox.producer_outcome_message``),
in the transaction that records that outcome. The workflow loop hands such messages to
``handle``, which records each outcome on its run (``record_step_outcome``: the step's
``success`` decides, its outputs are extracted), advances the run and records what it orders
next, in one transaction. A duplicate or late message changes nothing and is consumed.

A step with a whole-step ``timeout_seconds`` also gets a ``workflow`` message available
when that time is up (published with its call): if the step is still running on that call
then, the call is cancelled and the step failed (``call failed: step_timeout``) in one
transaction; otherwise the message is only consumed.

A run a schedule started (origin ``schedule:<id>``: ``fired_run``, recorded by the schedule's
transaction) that ends sends its schedule a ``schedule`` message with its terminal status,
in the transaction that records that end (``application.outbox.run_outcome_messages``).
"""

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError, LRUCache

from application.clock import utcnow
from application.conflicts import retry_on_conflict
from application.idempotency import IdempotencyRecord
from application.loading import handle_by_aggregate, load_current, load_many
from application.outbox import (
    WITHDRAW_KEY,
    WORKFLOW,
    OutboxChanges,
    OutboxMessage,
    Recordable,
    TransactionEffects,
    record,
    run_outcome_messages,
    start_message,
)
from application.ports import SecretBox
from application.service_calls import ServiceCalls
from application.workflow_definitions import WorkflowDefinitionNotFoundError, WorkflowDefinitions
from domain.errors import DomainError, InvalidRequestError
from domain.ids import new_service_call_id
from domain.redaction import is_sealed
from domain.request import DEFAULT_MAX_BODY_BYTES
from domain.schedule_workflow import template_definition, template_input
from domain.service_call import ServiceCall, Status
from domain.workflow_dag import StepState
from domain.workflow_definition import DEFAULT_MAX_STEPS, HARD_MAX_STEPS
from domain.workflow_run import StepOrder, WorkflowRun
from domain.workflow_secrets import seal_once, sealed_definition

log = structlog.get_logger(__name__)

CANCELLED_BY_RUN = "workflow run cancelled"  # the reason recorded on a step's cancelled call
CANCELLED_BY_TIMEOUT = "workflow step timed out"
STEP_TIMEOUT = "step_timeout"  # the error kind a step that ran out of time fails with
RESPONSE_UNREADABLE = "response_unreadable"  # a sealed response that could not be opened


class WorkflowRunNotFoundError(DomainError):
    def __init__(self, run_id: object) -> None:
        super().__init__(f"workflow run {run_id} not found")
        self.run_id = run_id


@dataclass(frozen=True)
class Outcome:
    """A use case's result: the run, the calls it submitted (or cancelled), and the log
    position of the last event it recorded (None: it recorded none), for read-your-writes."""

    run: WorkflowRun
    calls: list[ServiceCall] = field(default_factory=list)
    position: int | None = None


class Workflows:
    def __init__(
        self,
        calls: ServiceCalls,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_steps: int = DEFAULT_MAX_STEPS,
        cache_size: int = 10_000,
    ) -> None:
        """``max_body_bytes``: the deployment's limit on a call's body (a step's rendered
        body is held to it); ``max_steps``: on a definition's steps; ``cache_size``: how
        many runs the workflow loop keeps loaded (its own cache)."""
        self._calls = calls
        self._max_body_bytes = max_body_bytes
        self._max_steps = max_steps
        self._loaded: LRUCache[UUID, WorkflowRun] = LRUCache(maxsize=cache_size)
        self.definitions = WorkflowDefinitions(
            calls, max_steps=max_steps, max_body_bytes=max_body_bytes
        )

    # -- the use cases ---------------------------------------------------------------------

    def submit(
        self,
        tenant_id: str,
        definition: Mapping[str, Any],
        input: Mapping[str, Any] | None,
        definition_version: int | None = None,
    ) -> Outcome:
        """A new run of ``definition`` (checked here; ``definition_version``: of the stored
        definition it is), its first steps ordered."""
        now = utcnow()
        if isinstance(definition, Mapping):  # else the aggregate names the error
            definition = sealed_definition(definition, self._calls.secret_box.seal)
        run = WorkflowRun.submit(
            id=new_workflow_run_id(),
            tenant_id=tenant_id,
            definition=definition,
            input=input,
            now=now,
            definition_version=definition_version,
            max_steps=self._max_steps,
            secrets=self._calls.secret_box,
        )
        orders = run.advance(now, _new_call_id, self._max_body_bytes, self._calls.secret_box)
        return self._record(run, orders, now)

    def submit_stored(
        self,
        tenant_id: str,
        name: str,
        version: int | None,
        input: Mapping[str, Any] | None,
    ) -> Outcome:
        """A new run of the tenant's stored definition ``name`` at ``version`` (None: the
        newest); the run records the version (its name is the definition's). An unknown
        name or version is the request's error, naming its field."""
        try:
            stored = self.definitions.get(tenant_id, name, version)
        except WorkflowDefinitionNotFoundError as error:
            field = "definition_name" if error.version is None else "definition_version"
            raise InvalidRequestError(field, str(error)) from None
        except InvalidRequestError as error:  # a name or version no definition can have
            field = "definition_name" if error.field == "name" else "definition_version"
            raise InvalidRequestError(field, error.message) from None
        return self.submit(tenant_id, stored.definition, input, stored.version)

    def get(self, tenant_id: str, run_id: UUID) -> WorkflowRun:
        try:
            run: WorkflowRun = self._calls.repository.get(run_id)
        except AggregateNotFoundError:
            raise WorkflowRunNotFoundError(run_id) from None
        if not isinstance(run, WorkflowRun) or run.tenant_id != tenant_id:
            raise WorkflowRunNotFoundError(run_id)
        return run

    def cancel(self, tenant_id: str, run_id: UUID, reason: str | None = None) -> Outcome:
        """Stop the run and cancel its steps' calls still running, in one transaction."""

        def once() -> Outcome:
            now = utcnow()
            run = self.get(tenant_id, run_id)
            running = run.cancel(reason, now)
            orders = run.advance(now, _new_call_id, self._max_body_bytes, self._calls.secret_box)
            cancelled = self._cancel_calls(running, now)
            return self._record(run, orders, now, cancelled, _timeout_keys(run, running))

        return retry_on_conflict(once, f"workflow run {run_id}")

    def pause(self, tenant_id: str, run_id: UUID) -> Outcome:
        return self._command(tenant_id, run_id, lambda run, now: run.pause(now))

    def resume(self, tenant_id: str, run_id: UUID) -> Outcome:
        return self._command(tenant_id, run_id, lambda run, now: run.resume(now))

    def retry_from_failed(self, tenant_id: str, run_id: UUID) -> Outcome:
        return self._command(tenant_id, run_id, lambda run, now: run.retry_from_failed(now))

    def rerun_step(
        self,
        tenant_id: str,
        run_id: UUID,
        step_id: str,
        input_override: Mapping[str, Any],
        actor: str,
    ) -> Outcome:
        return self._command(
            tenant_id,
            run_id,
            lambda run, now: run.rerun_step(
                step_id, input_override, actor, now, self._calls.secret_box
            ),
        )

    # -- the workflow loop's -----------------------------------------------------------------

    def handle(self, messages: Sequence[OutboxMessage]) -> None:
        """Steps' outcomes, for many runs, in one transaction."""
        handle_by_aggregate(messages, self._loaded, self._handle)

    def _handle(self, by_run: dict[UUID, list[OutboxMessage]], consume: list[int]) -> None:
        now = utcnow()
        found = load_current(self._calls, by_run, self._loaded)
        changed: list[WorkflowRun] = []
        orders: list[tuple[WorkflowRun, StepOrder]] = []
        timed_out: list[UUID] = []
        withdraw: list[str] = []  # the timeouts of steps that ended
        for run_id, received in by_run.items():
            run = found.get(run_id)
            if not isinstance(run, WorkflowRun):
                log.warning("unknown_workflow_run", workflow_run_id=str(run_id))
                continue
            recorded = run.version
            for message in received:
                if "timeout" in message.payload:
                    timed_out.extend(_take_timeout(run, message, now))
                else:
                    withdraw.extend(_take_outcome(run, message, now, self._calls.secret_box))
            advanced = run.advance(now, _new_call_id, self._max_body_bytes, self._calls.secret_box)
            orders.extend((run, o) for o in advanced)
            if run.version != recorded:
                changed.append(run)
        cancelled = self._cancel_calls(timed_out, now, CANCELLED_BY_TIMEOUT)
        self._record_many(
            changed, orders, now, consume=consume, cancelled=cancelled, withdraw=withdraw
        )

    # -- recording -------------------------------------------------------------------------

    def _command(
        self,
        tenant_id: str,
        run_id: UUID,
        apply: Callable[[WorkflowRun, datetime], object],
    ) -> Outcome:
        """The command, then ``advance``, recorded with the calls it orders; a write conflict
        (the workflow loop recorded an outcome meanwhile) is tried again from fresh state."""

        def once() -> Outcome:
            now = utcnow()
            run = self.get(tenant_id, run_id)
            apply(run, now)
            orders = run.advance(now, _new_call_id, self._max_body_bytes, self._calls.secret_box)
            return self._record(run, orders, now)

        return retry_on_conflict(once, f"workflow run {run_id}")

    def _record(
        self,
        run: WorkflowRun,
        orders: Sequence[StepOrder],
        now: datetime,
        cancelled: Sequence[ServiceCall] = (),
        withdraw: Sequence[str] = (),
    ) -> Outcome:
        """One run's events and its calls: what ``_record_many`` did."""
        pairs = [(run, order) for order in orders]
        calls, position = self._record_many(
            [run], pairs, now, cancelled=cancelled, withdraw=withdraw
        )
        return Outcome(run, [*calls, *cancelled], position)

    def _record_many(
        self,
        runs: Sequence[WorkflowRun],
        orders: Sequence[tuple[WorkflowRun, StepOrder]],
        now: datetime,
        *,
        consume: Sequence[int] = (),
        cancelled: Sequence[ServiceCall] = (),
        withdraw: Sequence[str] = (),
    ) -> tuple[list[ServiceCall], int | None]:
        """The runs' events, their steps' new calls (with their ``start`` messages, their
        Idempotency-Keys and their steps' timeouts), the calls cancelled for them, and the
        messages consumed, in one transaction. The cancelled calls publish nothing: their
        outcomes would only be no-ops for steps that are over already. ``withdraw``: the
        timeout messages of steps that ended, deleted in the same transaction."""
        calls, publish, keys = self.step_calls(orders, now)
        publish.extend(run_outcome_messages(runs))  # a schedule's run that ended tells it
        effects = TransactionEffects(OutboxChanges(consume, publish, withdraw), idempotency=keys)
        aggregates: list[Recordable] = [*runs, *calls, *cancelled]
        return calls, record(self._calls, aggregates, effects)

    def step_calls(
        self, orders: Sequence[tuple[WorkflowRun, StepOrder]], now: datetime
    ) -> tuple[list[ServiceCall], list[OutboxMessage], list[IdempotencyRecord]]:
        """The steps' new calls (due ``now``), with their ``start`` messages and their
        steps' timeouts, and their Idempotency-Keys: what a transaction records with them."""
        calls = [self._step_call(run, order, now) for run, order in orders]
        keys = [
            IdempotencyRecord(c.tenant_id, str(c.idempotency_key), c.id, _key_hash(c))
            for c in calls
        ]
        publish = [start_message(call) for call in calls]
        publish.extend(_timeout_message(run, order, now) for run, order in orders
                       if order.timeout_seconds is not None)
        return calls, publish, keys

    # -- a producer's runs (a schedule's fires: application/schedules.py) -------------------

    def fired_run(
        self,
        tenant_id: str,
        template: Mapping[str, Any],
        *,
        run_id: UUID,
        origin: str,
        idempotency_key: str,
        now: datetime,
    ) -> WorkflowRun:
        """The run a schedule's fire starts, not advanced yet (``started``): its template's
        definition was checked and sealed when the schedule recorded it (the deployment's
        step limit included; the hard one here, so a lowered limit fails no fire)."""
        return WorkflowRun.submit(
            id=run_id,
            tenant_id=tenant_id,
            definition=template_definition(template),
            input=template_input(template),
            now=now,
            max_steps=HARD_MAX_STEPS,
            secrets=self._calls.secret_box,
            origin=origin,
            idempotency_key=idempotency_key,
        )

    def started(
        self, run: WorkflowRun, at: datetime
    ) -> tuple[list[ServiceCall], list[OutboxMessage], list[IdempotencyRecord]]:
        """``run`` advanced as of ``at`` (its fire's due time: its first steps' calls are
        due then): what ``step_calls`` gives for its orders."""
        orders = run.advance(at, _new_call_id, self._max_body_bytes, self._calls.secret_box)
        return self.step_calls([(run, order) for order in orders], at)

    def cancel_runs(
        self, runs: Sequence[WorkflowRun], reason: str, now: datetime
    ) -> list[ServiceCall]:
        """Cancel ``runs`` (a newer fire of their schedule replaced them): the calls of
        their running steps, cancelled, to record with them (they publish nothing)."""
        running = [call_id for run in runs for call_id in run.cancel(reason, now)]
        return self._cancel_calls(running, now, reason)

    @property
    def max_steps(self) -> int:
        """The deployment's limit on a definition's steps."""
        return self._max_steps

    def _step_call(self, run: WorkflowRun, order: StepOrder, now: datetime) -> ServiceCall:
        """The call a step order submits, due now, its secret header values sealed (only
        ciphertext is recorded; the worker opens them to send): those the definition
        sealed already stay as they are."""
        name = f"{run.name}/{order.step_id}"
        return ServiceCall.submit(
            id=order.call_id,
            tenant_id=run.tenant_id,
            name=f"{name}/compensate" if order.compensation else name,
            request=order.request.sealed(seal_once(self._calls.secret_box.seal)),
            due_at=now,
            idempotency_key=order.idempotency_key,
            retry_policy=order.retry_policy,
            origin=order.origin,
            seal_response=order.seal_response,  # its response holds a secret output
        )

    def _cancel_calls(
        self, call_ids: Sequence[UUID], now: datetime, reason: str = CANCELLED_BY_RUN
    ) -> list[ServiceCall]:
        done = []
        for call in load_many(self._calls, call_ids).values():
            if isinstance(call, ServiceCall) and not call.is_terminal:
                call.cancel(reason, now)
                done.append(call)
        return done


def _take_outcome(
    run: WorkflowRun, message: OutboxMessage, now: datetime, secrets: SecretBox
) -> list[str]:
    """Record a step's call's outcome (a malformed message is logged and dropped); the key
    of the step's timeout message to withdraw, if it has one."""
    outcome = message.payload.get("outcome")
    if not isinstance(outcome, dict):
        log.warning("workflow_message_without_outcome", workflow_run_id=str(run.id))
        return []
    try:
        call_id = UUID(outcome["call_id"])
        opened = _opened_response(outcome, secrets)
        if opened is None:  # the step fails: it cannot read its outputs
            log.error("step_response_unreadable", workflow_run_id=str(run.id))
            outcome = {**outcome, "status": Status.FAILED, "status_code": None,
                       "error_kind": RESPONSE_UNREADABLE}
        headers, body = opened or ({}, None)
        taken = run.record_step_outcome(
            call_id,
            outcome["status"],
            outcome.get("status_code"),
            headers,
            body,
            now,
            outcome.get("error_kind"),
            secrets,
        )
    except (InvalidRequestError, KeyError, ValueError) as error:
        log.warning("workflow_outcome_unusable", workflow_run_id=str(run.id), error=str(error))
        return []
    if not taken:
        log.info("stale_step_outcome_ignored", workflow_run_id=str(run.id))
        return []
    return _timeout_keys(run, [call_id])


def _opened_response(
    outcome: Mapping[str, Any], secrets: SecretBox
) -> tuple[dict[str, str], str | None] | None:
    """The response's headers and body, opened where the call recorded them sealed (a step
    with secret outputs): in clear only here, to take the outputs (sealed again). None:
    they cannot be opened (tampered with, sealed under another key)."""

    def opened(value: Any) -> Any:
        return secrets.open(value) if is_sealed(value) else value

    headers = outcome.get("headers") or {}
    try:
        return {name: opened(v) for name, v in headers.items()}, opened(outcome.get("body"))
    except Exception:
        return None


def _timeout_keys(run: WorkflowRun, call_ids: Sequence[UUID]) -> list[str]:
    """The keys of the timeout messages of the steps ``call_ids`` ran, those with a
    whole-step timeout (withdrawn once the step has ended)."""
    timed = {
        record.call_id
        for step_id, record in run.steps.items()
        if run.definition.step(step_id).timeout_seconds is not None
    }
    return [_timeout_key(call_id) for call_id in call_ids if call_id in timed]


def _timeout_key(call_id: UUID) -> str:
    return f"wf-timeout:{call_id}"


def _timeout_message(run: WorkflowRun, order: StepOrder, now: datetime) -> OutboxMessage:
    """The message that ends a step still running on this call when its time is up."""
    assert order.timeout_seconds is not None
    at = now + timedelta(seconds=order.timeout_seconds)
    return OutboxMessage(
        WORKFLOW,
        run.tenant_id,
        run.id,
        0,
        available_at=at,
        due_at=at,
        payload={
            "timeout": {"step": order.step_id, "call_id": str(order.call_id)},
            WITHDRAW_KEY: _timeout_key(order.call_id),  # withdrawn when the step ends first
        },
    )


def _take_timeout(run: WorkflowRun, message: OutboxMessage, now: datetime) -> list[UUID]:
    """A step's time is up: if it still runs on the call the message names, fail it (the
    call to cancel is returned); else nothing (it ended, or runs again on a new call)."""
    timeout = message.payload["timeout"]
    try:
        call_id = UUID(timeout["call_id"])
        record = run.steps[timeout["step"]]
    except (KeyError, TypeError, ValueError):
        log.warning("workflow_timeout_unusable", workflow_run_id=str(run.id))
        return []
    if record.call_id != call_id or record.state is not StepState.RUNNING:
        return []
    run.record_step_outcome(call_id, Status.FAILED, None, {}, None, now, STEP_TIMEOUT)
    log.info("workflow_step_timed_out", workflow_run_id=str(run.id), step=timeout["step"])
    return [call_id]


def new_workflow_run_id() -> UUID:
    return new_service_call_id()  # a UUIDv7: runs are ordered by submit time


def _new_call_id(_: str) -> UUID:
    return new_service_call_id()


def _key_hash(call: ServiceCall) -> str:
    return hashlib.sha256(str(call.idempotency_key).encode()).hexdigest()
