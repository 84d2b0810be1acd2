"""A look at a schedule: which nominal times fire, wait or are skipped now, and why.

Pure: ``plan_due`` and ``plan_backfill`` read a schedule's state and return a ``DuePlan``;
the ``Schedule`` aggregate records it (``Schedule.apply``), a dry run only shows it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from domain.schedule_decisions import (
    MAX_DUE_PER_LOOK,
    OverlapAction,
    decide_overlap,
    due_times,
    release_times,
)
from domain.schedule_spec import ScheduleSpec
from domain.schedule_times import Fire, fires_between, jitter_offset


class SkipReason(StrEnum):
    OVERLAP = "overlap"  # the previous fire's call was not terminal (overlap=skip, or full)
    MISSED = "missed"  # later than the catch-up window (workers down)
    PAUSED = "paused"  # due while the schedule was paused
    DST_GAP = "dst_gap"  # the wall time did not exist (gap=skip)


@dataclass(frozen=True)
class PlannedFire:
    fire: Fire
    due_at: datetime  # when its call is due: nominal + jitter, or later at the capped rate
    catch_up: bool = False  # a missed time made anyway (on_missed latest/all)
    from_buffer: bool = False  # it waited for the previous fire's call (buffer_one/all)
    cancel_previous: bool = False  # cancel the calls still running first (cancel_other)


@dataclass(frozen=True)
class PlannedSkip:
    fire: Fire
    reason: SkipReason


@dataclass(frozen=True)
class PlannedBuffer:
    fire: Fire  # waits until no earlier fire's call is running


Action = PlannedFire | PlannedSkip | PlannedBuffer


@dataclass(frozen=True)
class CatchUp:
    """Missed nominal times not fired, summed up (there may be thousands)."""

    missed: int
    paused: int  # of which due while the schedule was paused
    first: datetime
    last: datetime


@dataclass(frozen=True)
class DuePlan:
    actions: tuple[Action, ...] = ()
    caught_up: CatchUp | None = None
    more: bool = False  # more was due than one look takes: look again at once
    backfill: bool = False

    @property
    def fires(self) -> list[PlannedFire]:
        return [a for a in self.actions if isinstance(a, PlannedFire)]


def plan_due(
    spec: ScheduleSpec,
    *,
    schedule_id: UUID,
    cursor: datetime,
    now: datetime,
    until: datetime | None = None,
    running: int,
    buffered: Sequence[Fire],
    runs: int,
    paused_until: datetime | None,
) -> DuePlan:
    """What to do with the nominal times after ``cursor`` due by ``until`` (default ``now``),
    given ``running`` fires' calls not yet terminal, the ``buffered`` fires waiting, the
    ``runs`` made so far and when the schedule was last resumed (``paused_until``)."""
    runs_left = None if spec.max_runs is None else spec.max_runs - runs - len(buffered)
    picked: list[tuple[Fire, OverlapAction | None, bool]] = []  # (fire, action, catch-up)
    waiting = len(buffered)
    if buffered and running == 0:  # the oldest waiting fire goes first
        picked.append((buffered[0], None, False))
        running, waiting = 1, waiting - 1
    due = due_times(spec, after=cursor, now=now, until=until, paused_until=paused_until)
    catch_ups = [(fire, True) for fire in due.catch_up]
    for fire, catch_up in (*catch_ups, *((fire, False) for fire in due.on_time)):
        if fire.skipped:
            picked.append((fire, OverlapAction.SKIP, False))
            continue
        if runs_left is not None and runs_left <= 0:
            break
        action = decide_overlap(spec.overlap, previous_running=running > 0, buffered=waiting)
        picked.append((fire, action, catch_up))
        if action is OverlapAction.SKIP:
            continue
        if runs_left is not None:
            runs_left -= 1
        if action is OverlapAction.BUFFER:
            waiting += 1
        else:
            running = running + 1 if action is OverlapAction.FIRE else 1
    actions = _actions(spec, schedule_id, now, picked)
    return DuePlan(
        actions=tuple(actions),
        caught_up=_catch_up(due.missed, paused_until),
        more=due.more,
    )


def plan_backfill(
    spec: ScheduleSpec,
    *,
    schedule_id: UUID,
    start: datetime,
    end: datetime,
    now: datetime,
    running: int,
    limit: int = MAX_DUE_PER_LOOK,
) -> DuePlan:
    """Fire the nominal times in [``start``, ``end``] again (or for the first time), as the
    overlap policy allows, at the capped rate. Their idempotency keys are the scheduled
    fires' own, so a time already fired is not fired twice (its call is found instead)."""
    fires = fires_between(spec, start - timedelta(microseconds=1), end, limit + 1)
    picked: list[tuple[Fire, OverlapAction | None, bool]] = []
    for fire in fires[:limit]:
        action = decide_overlap(spec.overlap, previous_running=running > 0, buffered=0)
        if action is OverlapAction.BUFFER:  # a backfill has no buffer: fires in turn instead
            action = OverlapAction.FIRE
        picked.append((fire, action, True))
        if action is not OverlapAction.SKIP:
            running = running + 1 if action is OverlapAction.FIRE else 1
    actions = _actions(spec, schedule_id, now, picked)
    return DuePlan(actions=tuple(actions), more=len(fires) > limit, backfill=True)


def _actions(
    spec: ScheduleSpec,
    schedule_id: UUID,
    now: datetime,
    picked: list[tuple[Fire, OverlapAction | None, bool]],
) -> list[Action]:
    """The actions, with each fire's due time: its nominal time plus its jitter, and, when a
    look finds several fires due, no earlier than the catch-up rate allows."""
    firing = sum(1 for _, action, _ in picked if action in _FIRES)
    slots = iter(release_times(now, firing, spec.catchup_rate_per_second))
    actions: list[Action] = []
    for fire, action, catch_up in picked:
        if action is OverlapAction.SKIP:
            reason = SkipReason.DST_GAP if fire.skipped else SkipReason.OVERLAP
            actions.append(PlannedSkip(fire, reason))
        elif action is OverlapAction.BUFFER:
            actions.append(PlannedBuffer(fire))
        else:
            jittered = fire.nominal + jitter_offset(schedule_id, fire.nominal, spec.jitter_seconds)
            actions.append(
                PlannedFire(
                    fire,
                    due_at=max(jittered, next(slots)),
                    catch_up=catch_up,
                    from_buffer=action is None,
                    cancel_previous=action is OverlapAction.CANCEL_PREVIOUS_THEN_FIRE,
                )
            )
    return actions


_FIRES = frozenset({None, OverlapAction.FIRE, OverlapAction.CANCEL_PREVIOUS_THEN_FIRE})


def _catch_up(missed: tuple[datetime, ...], paused_until: datetime | None) -> CatchUp | None:
    if not missed:
        return None
    paused = 0 if paused_until is None else sum(1 for m in missed if m <= paused_until)
    return CatchUp(missed=len(missed), paused=paused, first=missed[0], last=missed[-1])
