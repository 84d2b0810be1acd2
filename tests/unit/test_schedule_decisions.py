"""Missed fires (skip, latest, all with max_catchup; the catch-up window; the rate cap) and
every overlap policy, as pure decisions."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.schedule_decisions import (
    MAX_MISSED_PER_LOOK,
    OverlapAction,
    decide_overlap,
    due_times,
    release_times,
)
from domain.schedule_plan import (
    PlannedBuffer,
    PlannedFire,
    PlannedSkip,
    SkipReason,
    plan_backfill,
    plan_due,
)
from domain.schedule_spec import MAX_CATCHUP, OnMissed, OverlapPolicy, ScheduleSpec
from domain.schedule_times import Fire
from domain.wall_clock import GapPolicy

SCHEDULE_ID = UUID("0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b")
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # the last nominal time decided


def _minutely(**values: Any) -> ScheduleSpec:
    return ScheduleSpec(cron="* * * * *", **values)


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _minutes(times: Any) -> list[int]:
    return [
        int(((t.nominal if isinstance(t, Fire) else t) - T0).total_seconds() // 60) for t in times
    ]


# --- overlap


@pytest.mark.parametrize(
    ("policy", "buffered", "action"),
    [
        ("skip", 0, OverlapAction.SKIP),
        ("buffer_one", 0, OverlapAction.BUFFER),
        ("buffer_one", 1, OverlapAction.SKIP),
        ("buffer_all", 5, OverlapAction.BUFFER),
        ("cancel_other", 0, OverlapAction.CANCEL_PREVIOUS_THEN_FIRE),
        ("allow_all", 3, OverlapAction.FIRE),
    ],
)
def test_overlap_when_the_previous_call_is_running(
    policy: str, buffered: int, action: OverlapAction
) -> None:
    assert decide_overlap(OverlapPolicy(policy), previous_running=True, buffered=buffered) is action


@pytest.mark.parametrize("policy", list(OverlapPolicy))
def test_nothing_running_always_fires(policy: OverlapPolicy) -> None:
    assert decide_overlap(policy, previous_running=False, buffered=0) is OverlapAction.FIRE


# --- missed fires: workers were down from just after 12:00 until the look


def test_a_fire_within_the_window_is_just_late() -> None:
    due = due_times(_minutely(on_missed="skip"), after=T0, now=_at(1.5))
    assert (_minutes(due.on_time), due.missed, due.catch_up) == ([1], (), ())


@pytest.mark.parametrize(("on_missed", "catch_up"), [("skip", []), ("latest", []), ("all", [1, 2])])
def test_down_three_minutes_back_within_the_window(on_missed: str, catch_up: list[int]) -> None:
    """12:03 is 20 s late (within 60 s): it fires under every policy, so latest adds none."""
    due = due_times(_minutely(on_missed=on_missed), after=T0, now=_at(3 + 1 / 3))
    assert _minutes(due.on_time) == [3]
    assert _minutes(due.catch_up) == catch_up
    assert _minutes(due.missed) == [m for m in (1, 2) if m not in catch_up]
    assert due.through == _at(3)


@pytest.mark.parametrize(
    ("on_missed", "catch_up"), [("skip", []), ("latest", [3]), ("all", [1, 2, 3])]
)
def test_down_three_minutes_back_after_the_window(on_missed: str, catch_up: list[int]) -> None:
    """Back at 12:04:30 with a 20 s window: all three are missed; latest fires 12:03 once."""
    spec = _minutely(on_missed=on_missed, catchup_window_seconds=20)
    due = due_times(spec, after=T0, now=_at(3.5))
    assert due.on_time == ()
    assert _minutes(due.catch_up) == catch_up
    assert _minutes(due.missed) == [m for m in (1, 2, 3) if m not in catch_up]


def test_all_fires_the_newest_max_catchup() -> None:
    spec = _minutely(on_missed="all", max_catchup=2, catchup_window_seconds=1)
    due = due_times(spec, after=T0, now=_at(5.5))
    assert (_minutes(due.missed), _minutes(due.catch_up)) == ([1, 2, 3], [4, 5])


def test_too_many_missed_are_judged_over_several_looks() -> None:
    """A per-second schedule down for four hours: the oldest are skipped a batch at a time,
    always leaving the newest max_catchup for the look that reaches now."""
    spec = ScheduleSpec(cron="* * * * * *", on_missed=OnMissed.ALL, max_catchup=MAX_CATCHUP)
    now = T0 + timedelta(hours=4)
    first = due_times(spec, after=T0, now=now)
    assert first.more
    assert first.catch_up == ()
    assert first.on_time == ()
    assert len(first.missed) == MAX_MISSED_PER_LOOK - MAX_CATCHUP
    after = first.through
    looks = 1
    while True:
        assert after is not None
        due = due_times(spec, after=after, now=now)
        looks += 1
        if not due.more:
            break
        after = due.through
    assert looks == 2  # 14,400 seconds: 9,000 skipped, then the rest
    assert len(due.catch_up) == MAX_CATCHUP
    assert due.catch_up[-1].nominal == now - timedelta(seconds=61)
    assert len(due.on_time) == 61  # exactly 60 s late is within the window


def test_one_look_takes_at_most_limit_on_time_fires() -> None:
    spec = ScheduleSpec(cron="* * * * * *", catchup_window_seconds=3600)
    due = due_times(spec, after=T0, now=T0 + timedelta(minutes=10), limit=100)
    assert len(due.on_time) == 100
    assert due.more
    assert due.through == T0 + timedelta(seconds=100)


def test_release_times_space_fires_by_the_rate() -> None:
    assert release_times(T0, 3, 4.0) == [
        T0,
        T0 + timedelta(seconds=0.25),
        T0 + timedelta(seconds=0.5),
    ]


# --- plans: missed rules and overlap together


def _plan(spec: ScheduleSpec, now: datetime, **state: Any) -> Any:
    values: dict[str, Any] = {"running": 0, "buffered": (), "runs": 0, "paused_until": None}
    values.update(state)
    return plan_due(spec, schedule_id=SCHEDULE_ID, cursor=T0, now=now, **values)


def test_catch_up_fires_go_at_the_capped_rate() -> None:
    spec = _minutely(on_missed="all", catchup_window_seconds=1, catchup_rate_per_second=2)
    now = _at(3.5)
    plan = _plan(spec, now)
    assert [f.due_at for f in plan.fires] == [
        now,
        now + timedelta(seconds=0.5),
        now + timedelta(seconds=1),
    ]
    assert all(f.catch_up for f in plan.fires)


def test_on_time_fires_are_due_at_their_nominal_time_plus_jitter() -> None:
    spec = _minutely(jitter_seconds=30)
    plan = plan_due(
        spec,
        schedule_id=SCHEDULE_ID,
        cursor=T0,
        now=_at(0.9),
        until=_at(3),
        running=0,
        buffered=(),
        runs=0,
        paused_until=None,
    )
    assert _minutes(f.fire for f in plan.fires) == [1, 2, 3]  # planned ahead
    for fire in plan.fires:
        assert fire.fire.nominal <= fire.due_at < fire.fire.nominal + timedelta(seconds=30)


@pytest.mark.parametrize(
    ("policy", "kinds"),
    [
        ("skip", ["skip", "skip", "skip"]),
        ("buffer_one", ["buffer", "skip", "skip"]),
        ("buffer_all", ["buffer", "buffer", "buffer"]),
        ("cancel_other", ["cancel", "cancel", "cancel"]),
        ("allow_all", ["fire", "fire", "fire"]),
    ],
)
def test_each_overlap_policy_with_a_call_running(policy: str, kinds: list[str]) -> None:
    spec = _minutely(overlap=policy, on_missed="all", catchup_window_seconds=1)
    plan = _plan(spec, _at(3.5), running=1)
    assert [_kind(a) for a in plan.actions] == kinds


def test_with_nothing_running_the_first_fires_and_then_overlaps() -> None:
    spec = _minutely(overlap="skip", on_missed="all", catchup_window_seconds=1)
    plan = _plan(spec, _at(3.5))
    assert [_kind(a) for a in plan.actions] == ["fire", "skip", "skip"]
    assert all(
        isinstance(a, PlannedSkip) and a.reason is SkipReason.OVERLAP for a in plan.actions[1:]
    )


def test_a_buffered_fire_goes_first_once_nothing_runs() -> None:
    waiting = Fire(T0 - timedelta(minutes=1), (T0 - timedelta(minutes=1)).replace(tzinfo=None))
    spec = _minutely(overlap="buffer_one")
    plan = _plan(spec, _at(1.2), buffered=[waiting])
    assert [_kind(a) for a in plan.actions] == ["from_buffer", "buffer"]
    assert plan.actions[0].fire == waiting


def test_max_runs_stops_the_plan() -> None:
    """Fires go in nominal order: the two runs left are the two oldest caught up."""
    spec = _minutely(max_runs=5, on_missed="all", catchup_window_seconds=1)
    plan = _plan(spec, _at(9.5), runs=3)
    assert _minutes(f.fire for f in plan.fires) == [1, 2]


def test_a_skipped_gap_is_planned_as_a_skip() -> None:
    spec = ScheduleSpec(cron="30 2 * * *", timezone="America/New_York", gap=GapPolicy.SKIP)
    cursor = datetime(2026, 3, 8, 0, tzinfo=UTC)
    plan = plan_due(
        spec,
        schedule_id=SCHEDULE_ID,
        cursor=cursor,
        now=datetime(2026, 3, 8, 7, 30, 5, tzinfo=UTC),
        running=0,
        buffered=(),
        runs=0,
        paused_until=None,
    )
    [skip] = plan.actions
    assert isinstance(skip, PlannedSkip)
    assert skip.reason is SkipReason.DST_GAP


def test_missed_while_paused_are_counted_apart() -> None:
    spec = _minutely(on_missed="skip")
    plan = _plan(spec, _at(10.5), paused_until=_at(6.5))
    assert plan.caught_up is not None
    assert (plan.caught_up.missed, plan.caught_up.paused) == (9, 6)
    assert (plan.caught_up.first, plan.caught_up.last) == (_at(1), _at(9))
    assert _minutes(f.fire for f in plan.fires) == [10]


def test_backfill_lists_each_time_and_what_overlap_does() -> None:
    spec = _minutely(overlap="skip")
    plan = plan_backfill(
        spec, schedule_id=SCHEDULE_ID, start=_at(-3), end=_at(-1), now=T0, running=0
    )
    assert plan.backfill
    assert [(_kind(a), a.fire.nominal) for a in plan.actions] == [
        ("fire", _at(-3)),
        ("skip", _at(-2)),
        ("skip", _at(-1)),
    ]


def _kind(action: Any) -> str:
    if isinstance(action, PlannedSkip):
        return "skip"
    if isinstance(action, PlannedBuffer):
        return "buffer"
    assert isinstance(action, PlannedFire)
    if action.from_buffer:
        return "from_buffer"
    return "cancel" if action.cancel_previous else "fire"
