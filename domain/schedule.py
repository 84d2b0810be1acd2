"""The Schedule aggregate: a recurring schedule whose fires are service calls (or, with a
workflow template, workflow runs: ``domain.schedule_workflow``).

It never makes a request: each fire is a call or run (``FireOrder``) the application submits with
the idempotency key ``sched:<schedule id>:<nominal UTC time>``, so two timers, a replay or a
restart cannot fire one nominal time twice; the call's terminal outcome comes back as a
message (``record_outcome``). Events say why: a fire, a skip and its reason, a catch-up.

Public commands check the rules and compute values (fire times, the next nominal time, which
depends on the tz database: recorded, not recomputed on replay); the private ``@event``
methods only assign. A duplicate or late message is a no-op: the command returns ``None``
(or ``False``) and records nothing.

One module over 300 lines on purpose, as ``ServiceCall``: the aggregate with all its events.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from eventsourcing.domain import Snapshot as AggregateSnapshot

from domain.errors import InvalidRequestError
from domain.schedule_plan import (
    CatchUp,
    DuePlan,
    PlannedFire,
    PlannedSkip,
    SkipReason,
    plan_backfill,
    plan_due,
)
from domain.schedule_spec import ScheduleSpec
from domain.schedule_status import (
    FinishReason,
    FireOrder,
    FireOutcome,
    PauseReason,
    ScheduleStatus,
    ScheduleTransitionError,
    check_schedule_name,
)
from domain.schedule_template import redacted_template
from domain.schedule_times import (
    Fire,
    check_fires_after,
    fire_idempotency_key,
    first_fire,
    trigger_idempotency_key,
)
from domain.schedule_workflow import check_template, is_workflow_template, redacted_workflow
from domain.wall_clock import DstNote, tzdata_version

__all__ = [
    "FireOrder",
    "FireOutcome",
    "Schedule",
    "ScheduleStatus",
    "ScheduleTransitionError",
    "SkipReason",
]


_OUTCOMES = frozenset({"FireSucceeded", "FireFailed", "FireCancelled"})


class Schedule(Aggregate):
    TOPIC = "duecall:Schedule"

    class Event(Aggregate.Event):
        TOPIC = "duecall:Schedule.Event"

        def mutate(self, aggregate: Any) -> Any:
            """Applied; and the schedule's ``wake_version`` (which of its wake-ups is live)
            moves to this event, unless it is a fire's outcome that leaves no buffered fire
            to start: the wake-up published before stays right, so none is published."""
            schedule: Any = super().mutate(aggregate)
            if type(self).__name__ not in _OUTCOMES or schedule.buffered:
                schedule.wake_version = self.originator_version
            return schedule

    class Created(Event, Aggregate.Created):
        TOPIC = "duecall:Schedule.Created"
        tenant_id: str
        name: str
        template: dict[str, Any]
        spec: dict[str, Any]
        created_at: datetime
        next_nominal: datetime | None
        tzdata: str

    class Snapshot(AggregateSnapshot):
        """The schedule's state in plain values (its spec as a dict, its calls in flight keyed
        by string), so a long history loads from the newest snapshot on."""

        TOPIC = "duecall:Schedule.Snapshot"

        @classmethod
        def take(cls, aggregate: Any) -> "Schedule.Snapshot":
            snapshot = super().take(aggregate)
            snapshot.state.update(
                spec=aggregate.spec.to_dict(),
                status=aggregate.status.value,
                in_flight={str(k): v for k, v in aggregate.in_flight.items()},
                buffered=[
                    [f.nominal, f.local, f.dst_note and f.dst_note.value]
                    for f in aggregate.buffered
                ],
            )
            return snapshot

        def mutate(self, _: None) -> Any:
            schedule: Any = super().mutate(None)
            schedule.spec = ScheduleSpec.restored(schedule.spec)
            schedule.status = ScheduleStatus(schedule.status)
            schedule.in_flight = {UUID(k): v for k, v in schedule.in_flight.items()}
            schedule.buffered = [
                Fire(nominal, local, DstNote(note) if note else None)
                for nominal, local, note in schedule.buffered
            ]
            return schedule

    @event(Created)
    def __init__(
        self,
        id: UUID,
        tenant_id: str,
        name: str,
        template: dict[str, Any],
        spec: dict[str, Any],
        created_at: datetime,
        next_nominal: datetime | None,
        tzdata: str,
    ) -> None:
        self.tenant_id = tenant_id
        self.name = name
        self.template = template
        self.spec = ScheduleSpec.restored(spec)
        self.status = ScheduleStatus.ACTIVE
        self.cursor = created_at  # every nominal time up to here is decided
        self.next_nominal = next_nominal
        self.last_fired: datetime | None = None
        self.last_due_at: datetime | None = None
        self.last_triggered_at: datetime | None = None  # when last fired by hand
        self.runs = self.fired = self.skipped = self.missed = self.triggered = 0
        self.succeeded = self.failed = self.cancelled = self.consecutive_failures = 0
        self.in_flight: dict[UUID, datetime] = {}  # fired calls not yet terminal
        self.buffered: list[Fire] = []  # fires waiting for those (buffer_one, buffer_all)
        self.resumed_at: datetime | None = None
        self.pause_reason: str | None = None
        self.wake_version = 1  # the version its live wake-up carries (``Event.mutate``)

    @property
    def starts_runs(self) -> bool:
        """Whether its fires start workflow runs (its template is a workflow), not calls."""
        return is_workflow_template(self.template)

    @property
    def wake_moved(self) -> bool:
        """Whether an event not yet collected moved ``wake_version``: the wake-up published
        before is stale once they are recorded, and the schedule needs a new one."""
        return self.wake_version > self.version - len(self.pending_events)

    @classmethod
    def create(
        cls,
        *,
        id: UUID,
        tenant_id: str,
        name: str,
        template: dict[str, Any],
        spec: ScheduleSpec,
        now: datetime,
    ) -> "Schedule":
        """A new schedule; its template (a call's or a workflow's: ``check_template``)
        sealed by the caller (``sealed_template``, ``sealed_definition``)."""
        check_fires_after(spec, now)
        return cls(
            id=id,
            tenant_id=tenant_id,
            name=check_schedule_name(name),
            template=check_template(template),
            spec=spec.to_dict(),
            created_at=now,
            next_nominal=_nominal(first_fire(spec, now)),
            tzdata=tzdata_version(),
        )

    def due_fires(self, now: datetime, until: datetime | None = None) -> DuePlan:
        """What to fire, buffer or skip for the nominal times due by ``until`` (default now),
        by the spec's missed-fire and overlap rules; nothing is recorded (see ``apply``)."""
        if self.status != ScheduleStatus.ACTIVE:
            return DuePlan()
        return plan_due(
            self.spec,
            schedule_id=self.id,
            cursor=self.cursor,
            now=now,
            until=until,
            running=len(self.in_flight),
            buffered=self.buffered,
            runs=self.runs,
            paused_until=self.resumed_at,
        )

    def backfill(self, start: datetime, end: datetime, now: datetime) -> DuePlan:
        """The fires of the nominal times in [start, end] (a dry run shows it; ``apply``
        records it)."""
        if self.status == ScheduleStatus.DELETED:
            raise ScheduleTransitionError("backfill", self.status)
        if end < start:
            raise InvalidRequestError("end", "must not be before start")
        return plan_backfill(
            self.spec,
            schedule_id=self.id,
            start=start,
            end=end,
            now=now,
            running=len(self.in_flight),
        )

    def apply(
        self, plan: DuePlan, now: datetime, call_id_for: Callable[[Fire], UUID]
    ) -> list[FireOrder]:
        """Record ``plan`` (from ``due_fires`` or ``backfill``, just now): the calls to submit."""
        if plan.caught_up is not None:
            catch_ups = sum(1 for f in plan.fires if f.catch_up)
            self.record_caught_up(plan.caught_up, now, caught_up=catch_ups)
        orders: list[FireOrder] = []
        for action in plan.actions:
            if isinstance(action, PlannedFire):
                order = self.record_fire(
                    action, call_id_for(action.fire), now, backfill=plan.backfill
                )
                if order is not None:
                    orders.append(order)
            elif isinstance(action, PlannedSkip):
                self.record_skip(action.fire, action.reason, now)
            else:
                self.record_buffered(action.fire, now)
        return orders

    def record_fire(
        self, planned: PlannedFire, call_id: UUID, now: datetime, *, backfill: bool = False
    ) -> FireOrder | None:
        fire = planned.fire
        if call_id in self.in_flight or not self._may_take(fire, planned, backfill):
            return None
        cancelled = tuple(self.in_flight) if planned.cancel_previous else ()
        key = fire_idempotency_key(self.id, fire.nominal)
        moves_cursor = not backfill and not planned.from_buffer
        self._fired(
            nominal=fire.nominal,
            actual=planned.due_at,
            call_id=call_id,
            idempotency_key=key,
            local=fire.local,
            dst_note=fire.dst_note,
            catch_up=planned.catch_up,
            from_buffer=planned.from_buffer,
            backfill=backfill,
            cancelled_call_ids=list(cancelled),
            tzdata=tzdata_version(),
            fired_at=now,
            workflow_run=self.starts_runs,
            next_nominal=self._next_nominal_after(
                fire.nominal if moves_cursor else self.cursor,
                runs=self.runs + int(not backfill),
                buffered=len(self.buffered) - int(planned.from_buffer),
            ),
        )
        self._finish_if_done(now)
        return FireOrder(
            call_id, fire.nominal, planned.due_at, key, cancelled, workflow_run=self.starts_runs
        )

    def record_skip(self, fire: Fire, reason: SkipReason, now: datetime) -> bool:
        if self.status != ScheduleStatus.ACTIVE or fire.nominal <= self.cursor:
            return False
        self._skipped(
            nominal=fire.nominal,
            local=fire.local,
            dst_note=fire.dst_note,
            reason=reason,
            skipped_at=now,
            next_nominal=self._next_nominal_after(fire.nominal),
        )
        self._finish_if_done(now)
        return True

    def record_buffered(self, fire: Fire, now: datetime) -> bool:
        if self.status != ScheduleStatus.ACTIVE or fire.nominal <= self.cursor:
            return False
        self._buffered(
            nominal=fire.nominal,
            local=fire.local,
            dst_note=fire.dst_note,
            buffered_at=now,
            next_nominal=self._next_nominal_after(fire.nominal, buffered=len(self.buffered) + 1),
        )
        return True

    def record_caught_up(self, catch_up: CatchUp, now: datetime, *, caught_up: int = 0) -> bool:
        """Missed nominal times not fired (``caught_up``: how many more were fired anyway)."""
        if self.status != ScheduleStatus.ACTIVE or catch_up.last <= self.cursor:
            return False
        self._caught_up(
            missed=catch_up.missed,
            paused=catch_up.paused,
            caught_up=caught_up,
            first_missed=catch_up.first,
            last_missed=catch_up.last,
            on_missed=str(self.spec.on_missed),
            caught_up_at=now,
            next_nominal=self._next_nominal_after(catch_up.last),
        )
        self._finish_if_done(now)
        return True

    def trigger(self, call_id: UUID, now: datetime) -> FireOrder:
        """Fire now, out of schedule (any status but deleted; no overlap rule, no run)."""
        if self.status == ScheduleStatus.DELETED:
            raise ScheduleTransitionError("trigger", self.status)
        key = trigger_idempotency_key(self.id, call_id)
        runs = self.starts_runs
        self._triggered(
            call_id=call_id, idempotency_key=key, at=now, tzdata=tzdata_version(),
            workflow_run=runs,
        )
        return FireOrder(call_id, now, now, key, workflow_run=runs)

    def record_outcome(self, call_id: UUID, outcome: FireOutcome, now: datetime) -> bool:
        """A fire's call is terminal; after ``pause_after_failures`` failed fires in a row the
        schedule pauses itself (reason ``failures``)."""
        if call_id not in self.in_flight:
            return False
        nominal = self.in_flight[call_id]
        if outcome == FireOutcome.SUCCEEDED:
            self._fire_succeeded(call_id=call_id, nominal=nominal, at=now)
        elif outcome == FireOutcome.CANCELLED:
            self._fire_cancelled(call_id=call_id, nominal=nominal, at=now)
        else:
            self._fire_failed(
                call_id=call_id,
                nominal=nominal,
                at=now,
                consecutive_failures=self.consecutive_failures + 1,
            )
            limit = self.spec.pause_after_failures
            if limit is not None and self.consecutive_failures >= limit:
                self.pause(now, PauseReason.FAILURES)
        return True

    def pause(self, now: datetime, reason: str = PauseReason.CLIENT) -> bool:
        if self.status == ScheduleStatus.PAUSED:
            return False
        if self.status != ScheduleStatus.ACTIVE:
            raise ScheduleTransitionError("pause", self.status)
        self._paused(reason=str(reason), paused_at=now)
        return True

    def resume(self, now: datetime) -> bool:
        """Active again: nominal times due while paused are missed ones (``on_missed``)."""
        if self.status == ScheduleStatus.ACTIVE:
            return False
        if self.status != ScheduleStatus.PAUSED:
            raise ScheduleTransitionError("resume", self.status)
        self._resumed(resumed_at=now)
        return True

    def update(
        self,
        now: datetime,
        *,
        name: str | None = None,
        template: dict[str, Any] | None = None,
        spec: ScheduleSpec | None = None,
    ) -> None:
        """A new name, template or spec. A new spec is in force from ``now``: nominal times
        before it are not fired (by either spec); a finished schedule whose new spec fires
        is active again. The runs made count towards the new spec's ``max_runs``."""
        if self.status == ScheduleStatus.DELETED:
            raise ScheduleTransitionError("update", self.status)
        cursor, next_nominal = self.cursor, self.next_nominal
        if spec is not None:
            check_fires_after(spec, now, runs_done=self.runs + len(self.buffered))
            cursor = max(self.cursor, now)
            done = self.runs + len(self.buffered)
            next_nominal = _nominal(first_fire(spec, cursor, runs_done=done))
        self._updated(
            name=self.name if name is None else check_schedule_name(name),
            template=self.template if template is None else check_template(template),
            spec=(spec or self.spec).to_dict(),
            cursor=cursor,
            updated_at=now,
            next_nominal=next_nominal,
        )

    def delete(self, now: datetime) -> bool:
        if self.status == ScheduleStatus.DELETED:
            return False
        self._deleted(deleted_at=now)
        return True

    def _may_take(self, fire: Fire, planned: PlannedFire, backfill: bool) -> bool:
        if backfill:
            return self.status != ScheduleStatus.DELETED
        if self.status != ScheduleStatus.ACTIVE:
            return False
        if planned.from_buffer:
            return fire in self.buffered
        runs_left = None if self.spec.max_runs is None else self.spec.max_runs - self.runs
        return fire.nominal > self.cursor and (runs_left is None or runs_left > len(self.buffered))

    def _next_nominal_after(
        self, cursor: datetime, *, runs: int | None = None, buffered: int | None = None
    ) -> datetime | None:
        done = (self.runs if runs is None else runs) + (
            len(self.buffered) if buffered is None else buffered
        )
        return _nominal(first_fire(self.spec, max(cursor, self.cursor), runs_done=done))

    def _finish_if_done(self, now: datetime) -> None:
        if self.status != ScheduleStatus.ACTIVE or self.next_nominal is not None or self.buffered:
            return
        spec = self.spec
        if spec.max_runs is not None and self.runs >= spec.max_runs:
            reason = FinishReason.MAX_RUNS
        elif spec.end_at is not None:
            reason = FinishReason.END_AT
        else:
            reason = FinishReason.EXHAUSTED
        self._finished(reason=reason, finished_at=now)

    @event("Fired", topic="duecall:Schedule.Fired")
    def _fired(
        self,
        nominal: datetime,
        actual: datetime,
        call_id: UUID,
        idempotency_key: str,
        local: datetime,
        dst_note: str | None,
        catch_up: bool,
        from_buffer: bool,
        backfill: bool,
        cancelled_call_ids: list[UUID],
        tzdata: str,
        fired_at: datetime,
        next_nominal: datetime | None,
        workflow_run: bool = False,  # ``call_id`` is the id of the workflow run it started
    ) -> None:
        for cancelled in cancelled_call_ids:
            self.in_flight.pop(cancelled, None)
        self.in_flight[call_id] = nominal
        if from_buffer:
            self.buffered = [f for f in self.buffered if f.nominal != nominal]
        elif not backfill:
            self.cursor = max(self.cursor, nominal)
        if not backfill:
            self.runs += 1
        self.fired += 1
        self.last_fired = nominal
        self.last_due_at = actual
        self.next_nominal = next_nominal

    @event("Skipped", topic="duecall:Schedule.Skipped")
    def _skipped(
        self,
        nominal: datetime,
        local: datetime,
        dst_note: str | None,
        reason: str,
        skipped_at: datetime,
        next_nominal: datetime | None,
    ) -> None:
        self.cursor = max(self.cursor, nominal)
        self.skipped += 1
        self.next_nominal = next_nominal

    @event("Buffered", topic="duecall:Schedule.Buffered")
    def _buffered(
        self,
        nominal: datetime,
        local: datetime,
        dst_note: str | None,
        buffered_at: datetime,
        next_nominal: datetime | None,
    ) -> None:
        note = None if dst_note is None else DstNote(dst_note)
        self.buffered = [*self.buffered, Fire(nominal, local, note)]
        self.cursor = max(self.cursor, nominal)
        self.next_nominal = next_nominal

    @event("CaughtUp", topic="duecall:Schedule.CaughtUp")
    def _caught_up(
        self,
        missed: int,
        paused: int,
        caught_up: int,
        first_missed: datetime,
        last_missed: datetime,
        on_missed: str,
        caught_up_at: datetime,
        next_nominal: datetime | None,
    ) -> None:
        self.cursor = max(self.cursor, last_missed)
        self.missed += missed
        self.next_nominal = next_nominal

    @event("Triggered", topic="duecall:Schedule.Triggered")
    def _triggered(
        self,
        call_id: UUID,
        idempotency_key: str,
        at: datetime,
        tzdata: str,
        workflow_run: bool = False,  # ``call_id`` is the id of the workflow run it started
    ) -> None:
        self.in_flight[call_id] = at
        self.triggered += 1
        self.last_triggered_at = at

    @event("FireSucceeded", topic="duecall:Schedule.FireSucceeded")
    def _fire_succeeded(self, call_id: UUID, nominal: datetime, at: datetime) -> None:
        self.in_flight.pop(call_id, None)
        self.succeeded += 1
        self.consecutive_failures = 0

    @event("FireFailed", topic="duecall:Schedule.FireFailed")
    def _fire_failed(
        self, call_id: UUID, nominal: datetime, at: datetime, consecutive_failures: int
    ) -> None:
        self.in_flight.pop(call_id, None)
        self.failed += 1
        self.consecutive_failures = consecutive_failures

    @event("FireCancelled", topic="duecall:Schedule.FireCancelled")
    def _fire_cancelled(self, call_id: UUID, nominal: datetime, at: datetime) -> None:
        self.in_flight.pop(call_id, None)
        self.cancelled += 1

    @event("Paused", topic="duecall:Schedule.Paused")
    def _paused(self, reason: str, paused_at: datetime) -> None:
        self.status = ScheduleStatus.PAUSED
        self.pause_reason = reason

    @event("Resumed", topic="duecall:Schedule.Resumed")
    def _resumed(self, resumed_at: datetime) -> None:
        self.status = ScheduleStatus.ACTIVE
        self.pause_reason = None
        self.resumed_at = resumed_at
        self.consecutive_failures = 0

    @event("Updated", topic="duecall:Schedule.Updated")
    def _updated(
        self,
        name: str,
        template: dict[str, Any],
        spec: dict[str, Any],
        cursor: datetime,
        updated_at: datetime,
        next_nominal: datetime | None,
    ) -> None:
        self.name = name
        self.template = template
        self.spec = ScheduleSpec.restored(spec)
        self.cursor = cursor
        self.next_nominal = next_nominal
        if self.status == ScheduleStatus.FINISHED and next_nominal is not None:
            self.status = ScheduleStatus.ACTIVE

    @event("Finished", topic="duecall:Schedule.Finished")
    def _finished(self, reason: str, finished_at: datetime) -> None:
        self.status = ScheduleStatus.FINISHED

    @event("Deleted", topic="duecall:Schedule.Deleted")
    def _deleted(self, deleted_at: datetime) -> None:
        self.status = ScheduleStatus.DELETED
        self.next_nominal = None

    def log_context(self) -> dict[str, str]:
        return {"schedule_id": str(self.id), "tenant_id": self.tenant_id}

    def describe(self) -> dict[str, Any]:
        """The schedule as plain values, for the API and the CLI (secret header values
        redacted)."""
        return {
            "id": str(self.id),
            "tenant_id": self.tenant_id,
            "name": self.name,
            "status": self.status.value,
            "pause_reason": self.pause_reason,
            "call": None if self.starts_runs else redacted_template(self.template),
            "workflow": redacted_workflow(self.template) if self.starts_runs else None,
            "spec": self.spec.to_dict(),
            "next_fire_at": self.next_nominal,
            "last_fired_nominal": self.last_fired,
            "last_triggered_at": self.last_triggered_at,
            "counts": {
                "runs": self.runs,
                "fired": self.fired,
                "triggered": self.triggered,
                "skipped": self.skipped,
                "missed": self.missed,
                "succeeded": self.succeeded,
                "failed": self.failed,
                "cancelled": self.cancelled,
            },
            "consecutive_failures": self.consecutive_failures,
            "running": len(self.in_flight),
            "buffered": len(self.buffered),
            "created_at": self.created_on,
            "updated_at": self.modified_on,
            "version": self.version,
        }


def _nominal(fire: Fire | None) -> datetime | None:
    return None if fire is None else fire.nominal
