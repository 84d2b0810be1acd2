"""Schedules: recurring schedules whose fires are service calls (the Schedule aggregate).

The use cases record through ``ServiceCalls`` (one writer, one event store, one transaction
per use case). A schedule never makes a request: each fire is a ``ServiceCall`` with the
idempotency key ``sched:<schedule id>:<nominal UTC time>`` and ``origin`` ``schedule:<id>``,
submitted in the transaction that records the fire, due at its nominal time (plus jitter);
the timer starts it on time like any call.

Wake-ups. Each transaction that records a schedule's events, except a fire's outcome that
changes nothing about when it is next due, publishes its next ``schedule`` message
(``_wake_up``): available ``lookahead`` seconds before the next nominal time, carrying the
schedule's ``wake_version`` (the version of the event that called for it). The schedule loop
hands it to ``handle``, which plans what is due by then (missed fires, overlap) and records
it with the next wake-up. A wake-up for an older ``wake_version`` is stale (a later
transaction published its own) and is only consumed, so each schedule has one live wake-up
chain. A fired call that ends sends back a ``schedule`` message with its outcome
(``application.outbox.producer_outcome_message``); ``handle`` records it (counts,
``pause_after_failures``, the overlap buffer).

Workflow runs. A schedule whose template is a workflow (``domain.schedule_workflow``) starts
a ``WorkflowRun`` at each fire instead of a call: the same key (the run's, in the same
Idempotency-Key table, so a nominal time never starts two runs), origin ``schedule:<id>``,
its first steps' calls due at the fire's due time, all in the fire's transaction
(``Workflows.fired_run``, ``started``). The overlap rules count a run until it is terminal
(cancel_other cancels it, and its running steps' calls); the run's end comes back as a
``schedule`` message written with its terminal event (``run_outcome_messages``).
"""

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import structlog
from eventsourcing.application import AggregateNotFoundError, LRUCache

from application.clock import utcnow
from application.conflicts import retry_on_conflict
from application.idempotency import IdempotencyRecord
from application.loading import handle_by_aggregate, load_current, load_many
from application.metrics import SCHEDULE_FIRES, SCHEDULE_SKIPS
from application.outbox import (
    SCHEDULE,
    SCHEDULE_ORIGIN,
    OutboxChanges,
    OutboxMessage,
    Recordable,
    TransactionEffects,
    record,
    run_outcome_messages,
    start_message,
)
from application.service_calls import ServiceCalls, follow_ups
from application.workflows import Workflows
from domain.errors import DomainError, InvalidRequestError
from domain.ids import new_service_call_id
from domain.schedule import FireOrder, FireOutcome, Schedule, ScheduleStatus
from domain.schedule_plan import DuePlan, PlannedFire
from domain.schedule_spec import ScheduleSpec
from domain.schedule_template import (
    sealed_template,
    template_request,
    template_retry_policy,
)
from domain.schedule_times import Fire, fire_idempotency_key, next_fires
from domain.schedule_workflow import WORKFLOW, check_template, is_workflow_template
from domain.service_call import ServiceCall
from domain.workflow_run import WorkflowRun
from domain.workflow_secret_values import sealed_input, secret_input_of
from domain.workflow_secrets import sealed_definition

log = structlog.get_logger(__name__)

MAX_PREVIEW = 100
CANCELLED_BY_OVERLAP = "overlap: a newer fire of its schedule replaced it"
WAKE_LEASE_SECONDS = 30.0  # a wake-up whose handler died is handled again after this


class ScheduleNotFoundError(DomainError):
    def __init__(self, schedule_id: object) -> None:
        super().__init__(f"schedule {schedule_id} not found")
        self.schedule_id = schedule_id


@dataclass(frozen=True)
class CreateSchedule:
    tenant_id: str
    name: str
    template: dict[str, Any]  # a call's or a workflow's (``check_template``)
    spec: ScheduleSpec


@dataclass(frozen=True)
class UpdateSchedule:
    name: str | None = None
    template: dict[str, Any] | None = None
    spec: ScheduleSpec | None = None


@dataclass(frozen=True)
class Outcome:
    """A use case's result: the schedule, the calls (or workflow runs) it fired, and the log
    position of the last event it recorded (None: it recorded none), for read-your-writes."""

    schedule: Schedule
    calls: list[ServiceCall] = field(default_factory=list)
    plan: DuePlan | None = None
    position: int | None = None
    runs: list[WorkflowRun] = field(default_factory=list)


@dataclass
class Cancelled:
    """What fires cancel (overlap cancel_other): recorded calls, recorded runs, and those
    runs' running steps' calls (which publish nothing: their runs are over)."""

    calls: list[ServiceCall] = field(default_factory=list)
    runs: list[WorkflowRun] = field(default_factory=list)
    steps: list[ServiceCall] = field(default_factory=list)


class Schedules:
    def __init__(
        self,
        calls: ServiceCalls,
        lookahead: float = 1.0,
        cache_size: int = 10_000,
        workflows: Workflows | None = None,
    ) -> None:
        """``lookahead``: how long before its nominal time a fire is planned and its call
        submitted (due at the nominal time): the timer then starts it on time.
        ``cache_size``: how many schedules the schedule loop keeps loaded (its own cache,
        apart from the repository's, which calls fill). ``workflows``: what starts the runs
        of schedules whose template is a workflow (None: such templates are refused)."""
        self._calls = calls
        self._workflows = workflows
        self._loaded: LRUCache[UUID, Schedule] = LRUCache(maxsize=cache_size)
        self.lookahead = lookahead
        self._lookahead = timedelta(seconds=lookahead)

    # -- the API's commands --------------------------------------------------------------

    def create(self, command: CreateSchedule) -> Outcome:
        now = utcnow()
        schedule = Schedule.create(
            id=new_schedule_id(),
            tenant_id=command.tenant_id,
            name=command.name,
            template=self._sealed(command.template),
            spec=command.spec,
            now=now,
        )
        return self._record([schedule], now)

    def get(self, tenant_id: str, schedule_id: UUID) -> Schedule:
        try:
            schedule: Schedule = self._calls.repository.get(schedule_id)
        except AggregateNotFoundError:
            raise ScheduleNotFoundError(schedule_id) from None
        if not isinstance(schedule, Schedule) or schedule.tenant_id != tenant_id:
            raise ScheduleNotFoundError(schedule_id)
        return schedule

    def update(self, tenant_id: str, schedule_id: UUID, changes: UpdateSchedule) -> Outcome:
        template = None if changes.template is None else self._sealed(changes.template)
        return self._command(
            tenant_id,
            schedule_id,
            lambda s, now: s.update(now, name=changes.name, template=template, spec=changes.spec),
        )

    def pause(self, tenant_id: str, schedule_id: UUID) -> Outcome:
        return self._command(tenant_id, schedule_id, lambda s, now: s.pause(now))

    def resume(self, tenant_id: str, schedule_id: UUID) -> Outcome:
        return self._command(tenant_id, schedule_id, lambda s, now: s.resume(now))

    def delete(self, tenant_id: str, schedule_id: UUID) -> Outcome:
        return self._command(tenant_id, schedule_id, lambda s, now: s.delete(now))

    def trigger(self, tenant_id: str, schedule_id: UUID) -> Outcome:
        """Fire now, out of schedule: a call due now (no overlap rule, not a run)."""

        def once() -> Outcome:
            now = utcnow()
            schedule = self.get(tenant_id, schedule_id)
            order = schedule.trigger(new_service_call_id(), now)
            return self._record([schedule], now, [order])

        return retry_on_conflict(once, f"schedule {schedule_id}")

    def backfill(
        self, tenant_id: str, schedule_id: UUID, start: datetime, end: datetime, dry_run: bool
    ) -> Outcome:
        """Fire the nominal times in [start, end] that were never fired (a time fired before
        keeps its call: its idempotency key is taken); ``dry_run``: only say what would be."""

        def once() -> Outcome:
            now = utcnow()
            schedule = self.get(tenant_id, schedule_id)
            plan = self._not_fired_before(schedule, schedule.backfill(start, end, now))
            if dry_run:
                return Outcome(schedule, plan=plan)
            orders = schedule.apply(plan, now, _new_call_id)
            return replace(self._record([schedule], now, orders), plan=plan)

        return retry_on_conflict(once, f"schedule {schedule_id}")

    def preview(self, spec: ScheduleSpec, after: datetime, count: int) -> list[Fire]:
        """The next ``count`` nominal times after ``after`` (DST notes included)."""
        return next_fires(spec, after, min(count, MAX_PREVIEW), include_skipped=True)

    def _sealed(self, template: dict[str, Any]) -> dict[str, Any]:
        """The template checked, its secret header values sealed (only ciphertext is
        recorded; the fires' calls carry them sealed to the worker, which opens them); a
        workflow's definition checked against the deployment's step limit."""
        seal = self._calls.secret_box.seal
        if not is_workflow_template(template):
            return sealed_template(check_template(template), seal)
        if self._workflows is None:
            raise InvalidRequestError(WORKFLOW, "workflow runs are not available here")
        checked = check_template(template, self._workflows.max_steps)
        workflow = checked[WORKFLOW]
        definition = workflow["definition"]
        return {WORKFLOW: {
            **workflow,
            "definition": sealed_definition(definition, seal),
            # the runs' input: its secret_input values sealed too (each run keeps them so)
            "input": sealed_input(workflow["input"], secret_input_of(definition), seal),
        }}

    # -- the schedule loop's ---------------------------------------------------------------

    def handle(self, messages: Sequence[OutboxMessage]) -> None:
        """Wake-ups and fired calls' outcomes, for many schedules, in one transaction."""
        handle_by_aggregate(messages, self._loaded, self._handle)

    def _handle(self, by_schedule: dict[UUID, list[OutboxMessage]], consume: list[int]) -> None:
        now = utcnow()
        changed: list[Schedule] = []
        orders: list[tuple[Schedule, FireOrder]] = []
        woken: set[UUID] = set()  # their live wake-up is consumed here: publish the next
        again: set[UUID] = set()  # more was due than one look takes
        found = load_current(self._calls, by_schedule, self._loaded)
        for schedule_id, received in by_schedule.items():
            schedule = found.get(schedule_id)
            if schedule is None:
                log.warning("unknown_schedule", schedule_id=str(schedule_id))
                continue
            recorded = schedule.version
            plan = DuePlan()
            if _outcomes_taken(schedule, received, now):
                woken.add(schedule_id)
                plan = schedule.due_fires(now, now + self._lookahead)
            orders.extend((schedule, o) for o in schedule.apply(plan, now, _new_call_id))
            if plan.more:
                again.add(schedule_id)
            if schedule_id in woken or schedule.version != recorded:
                changed.append(schedule)
        self._record_many(changed, now, orders, consume, woken, again)

    # -- recording -------------------------------------------------------------------------

    def _command(
        self,
        tenant_id: str,
        schedule_id: UUID,
        apply: Callable[[Schedule, datetime], object],
    ) -> Outcome:
        def once() -> Outcome:
            now = utcnow()
            schedule = self.get(tenant_id, schedule_id)
            apply(schedule, now)
            return self._record([schedule], now)

        return retry_on_conflict(once, f"schedule {schedule_id}")

    def _record(
        self, schedules: Sequence[Schedule], now: datetime, orders: Sequence[FireOrder] = ()
    ) -> Outcome:
        """One schedule's events (and its fires'), recorded: what ``_record_many`` did."""
        assert len(schedules) == 1
        pairs = [(schedules[0], order) for order in orders]
        fired, position = self._record_many(schedules, now, pairs, [])
        calls = [c for c in fired if isinstance(c, ServiceCall)]
        runs = [r for r in fired if isinstance(r, WorkflowRun)]
        return Outcome(schedules[0], calls, position=position, runs=runs)

    def _record_many(
        self,
        schedules: Sequence[Schedule],
        now: datetime,
        orders: Sequence[tuple[Schedule, FireOrder]],
        consume: Sequence[int],
        woken: set[UUID] = frozenset(),  # type: ignore[assignment]
        again: set[UUID] = frozenset(),  # type: ignore[assignment]
    ) -> tuple[list[ServiceCall | WorkflowRun], int | None]:
        """The schedules' events, their fires' calls (with their keys and start messages) or
        runs (with their keys and first steps' calls), the calls and runs cancelled for them,
        and the next wake-up of each schedule that needs a new one (``woken``: its live one
        is consumed; or its events moved ``wake_version``), in one transaction; the calls and
        runs fired, and the log position of the last event recorded."""
        fired = [f for s, o in orders if (f := self._fire(s, o, now)) is not None]
        calls = [c for c in fired if isinstance(c, ServiceCall)]
        runs = [r for r in fired if isinstance(r, WorkflowRun)]
        cancelled = self._cancelled([o for _, o in orders], now, {f.id: f for f in fired})
        publish = [start_message(call) for call in calls if not call.is_terminal]
        publish.extend(
            w
            for s in schedules
            if s.id in woken or s.wake_moved
            if (w := self._wake_up(s, now, s.id in again)) is not None
        )
        # the cancelled calls' outcomes go back to their schedules (fired ones included)
        publish.extend(follow_ups([*cancelled.calls, *(c for c in calls if c.is_terminal)], {}))
        keys = [
            IdempotencyRecord(c.tenant_id, str(c.idempotency_key), c.id, _key_hash(c))
            for c in fired
        ]
        steps = self._started(runs, {o.call_id: o.due_at for _, o in orders}, publish, keys)
        # the runs that end here (cancelled; or nothing to run) tell their schedules
        publish.extend(run_outcome_messages([*runs, *cancelled.runs]))
        aggregates: list[Recordable] = [
            *schedules, *calls, *cancelled.calls, *runs, *steps, *cancelled.runs,
            *cancelled.steps,
        ]
        effects = TransactionEffects(OutboxChanges(consume, publish), idempotency=keys)
        recorded = [e for s in schedules for e in s.pending_events]
        position = record(self._calls, aggregates, effects)
        _count(recorded)
        return fired, position

    def _fire(
        self, schedule: Schedule, order: FireOrder, now: datetime
    ) -> ServiceCall | WorkflowRun | None:
        """What a fire submits: its call, or its workflow run (not advanced yet); None for
        a run that cannot start (a definition recorded before a rule it breaks): that fire
        is recorded failed, and the batch with other tenants' fires goes on."""
        if not order.workflow_run:
            return _fire_call(schedule, order)
        try:
            if self._workflows is None:
                raise InvalidRequestError(WORKFLOW, "workflow runs are not available here")
            return self._workflows.fired_run(
                schedule.tenant_id,
                schedule.template,
                run_id=order.call_id,
                origin=f"{SCHEDULE_ORIGIN}{schedule.id}",
                idempotency_key=order.idempotency_key,
                now=now,
            )
        except InvalidRequestError as error:
            log.warning("schedule_run_not_started", schedule_id=str(schedule.id),
                        error=str(error))
            schedule.record_outcome(order.call_id, FireOutcome.FAILED, now)
            return None

    def _started(
        self,
        runs: Sequence[WorkflowRun],
        due: Mapping[UUID, datetime],
        publish: list[OutboxMessage],
        keys: list[IdempotencyRecord],
    ) -> list[ServiceCall]:
        """The fired runs advanced as of their due times: their first steps' calls (their
        messages and keys added to ``publish`` and ``keys``)."""
        steps: list[ServiceCall] = []
        for run in runs:
            assert self._workflows is not None  # a run was fired: ``_fire`` had them
            calls, messages, step_keys = self._workflows.started(run, due[run.id])
            steps.extend(calls)
            publish.extend(messages)
            keys.extend(step_keys)
        return steps

    def _cancelled(
        self,
        orders: Sequence[FireOrder],
        now: datetime,
        fired: Mapping[UUID, ServiceCall | WorkflowRun],
    ) -> "Cancelled":
        """The calls and runs that fires cancel (overlap ``cancel_other``), cancelled: the
        recorded ones returned (with the calls of a run's running steps); one ``fired`` in
        this same transaction (a batch that plans several fires of a schedule, late) is
        cancelled as it is submitted, never started."""
        ids = [call_id for order in orders for call_id in order.cancel_call_ids]
        if not ids:
            return Cancelled()
        for call_id in ids:
            if call_id in fired:
                fired[call_id].cancel(CANCELLED_BY_OVERLAP, now)
        done = Cancelled()
        for found in load_many(self._calls, [i for i in ids if i not in fired]).values():
            if found.is_terminal:
                continue
            if isinstance(found, WorkflowRun):
                done.runs.append(found)
            else:
                found.cancel(CANCELLED_BY_OVERLAP, now)
                done.calls.append(found)
        if done.runs:
            assert self._workflows is not None  # runs were fired: ``_fire`` had them
            done.steps.extend(self._workflows.cancel_runs(done.runs, CANCELLED_BY_OVERLAP, now))
        return done

    def _wake_up(self, schedule: Schedule, now: datetime, again: bool) -> OutboxMessage | None:
        """The schedule's next wake-up, as of its version now (``again``: at once); None if
        it needs none."""
        if schedule.status != ScheduleStatus.ACTIVE:
            return None
        if again or (schedule.buffered and not schedule.in_flight):
            at = now  # more is due, or a buffered fire may go now
        elif schedule.next_nominal is not None:
            at = schedule.next_nominal
        else:
            return None
        return OutboxMessage(
            SCHEDULE,
            schedule.tenant_id,
            schedule.id,
            0,
            available_at=max(at - self._lookahead, now),
            due_at=at,
            lease_seconds=WAKE_LEASE_SECONDS,
            payload={"version": schedule.wake_version},
        )

    def _not_fired_before(self, schedule: Schedule, plan: DuePlan) -> DuePlan:
        """The plan without the fires whose nominal times were fired before."""
        keys = self._calls.idempotency_keys
        if keys is None:
            return plan
        wanted = [
            fire_idempotency_key(schedule.id, a.fire.nominal)
            for a in plan.actions
            if isinstance(a, PlannedFire)
        ]
        taken = keys.find(schedule.tenant_id, wanted) if wanted else {}
        actions = tuple(
            a
            for a in plan.actions
            if not isinstance(a, PlannedFire)
            or fire_idempotency_key(schedule.id, a.fire.nominal) not in taken
        )
        return DuePlan(actions, plan.caught_up, plan.more, plan.backfill)


def _outcomes_taken(schedule: Schedule, received: Iterable[OutboxMessage], now: datetime) -> bool:
    """Record the fired calls' outcomes among ``received``; whether a live wake-up (one for
    the schedule's ``wake_version`` as loaded) is among them."""
    recorded = schedule.wake_version
    woken = False
    for message in received:
        outcome = message.payload.get("outcome")
        if outcome is not None:
            fired = outcome.get("run_id") or outcome["call_id"]  # a run's, or a call's
            schedule.record_outcome(UUID(fired), FireOutcome(outcome["status"]), now)
        elif message.payload.get("version") == recorded:
            woken = True
    return woken


def new_schedule_id() -> UUID:
    return uuid4()


def _new_call_id(_: Fire) -> UUID:
    return new_service_call_id()


def _fire_call(schedule: Schedule, order: FireOrder) -> ServiceCall:
    """The call a fire submits (its template's secret values are sealed already)."""
    template = schedule.template
    return ServiceCall.submit(
        id=order.call_id,
        tenant_id=schedule.tenant_id,
        name=schedule.name,
        request=template_request(template),
        due_at=order.due_at,
        tags=list(template["tags"]),
        idempotency_key=order.idempotency_key,
        retry_policy=template_retry_policy(template),
        origin=f"{SCHEDULE_ORIGIN}{schedule.id}",
    )


def _key_hash(fired: ServiceCall | WorkflowRun) -> str:
    return hashlib.sha256(str(fired.idempotency_key).encode()).hexdigest()


def _count(recorded: Iterable[Any]) -> None:
    """Count the fires and skips just recorded (``/metrics``)."""
    for event in recorded:
        kind = type(event).__name__
        if kind == "Fired":
            fired = "backfill" if event.backfill else "catch_up" if event.catch_up else "scheduled"
            SCHEDULE_FIRES.labels(fired).inc()
        elif kind == "Triggered":
            SCHEDULE_FIRES.labels("trigger").inc()
        elif kind == "Skipped":
            SCHEDULE_SKIPS.labels(event.reason).inc()
        elif kind == "CaughtUp":
            SCHEDULE_SKIPS.labels("missed").inc(event.missed - event.paused)
            SCHEDULE_SKIPS.labels("paused").inc(event.paused)
