"""The Schedule aggregate: its events and counters, duplicates as no-ops, catch-up, overlap,
pause_after_failures, trigger, update, finish and delete, and replay."""

from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any
from uuid import UUID, uuid5

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    UUIDAsHex,
)

from domain.errors import InvalidRequestError, InvalidTransitionError
from domain.schedule import FireOutcome, Schedule, ScheduleStatus
from domain.schedule_plan import PlannedFire, SkipReason
from domain.schedule_spec import ScheduleSpec
from domain.schedule_times import Fire, fire_idempotency_key
from domain.wall_clock import tzdata_version

SCHEDULE_ID = UUID("0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b")
NOW = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
TEMPLATE = {"request": {"method": "post", "url": "https://api.example.com/tick"}}


def _at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def _nominal(minute: int) -> datetime:
    return datetime(2026, 1, 1, 12, minute, tzinfo=UTC)


def _schedule(**spec: Any) -> Schedule:
    values: dict[str, Any] = {"cron": "* * * * *"}
    values.update(spec)
    schedule = Schedule.create(
        id=SCHEDULE_ID,
        tenant_id="acme",
        name="tick",
        template=TEMPLATE,
        spec=ScheduleSpec.from_dict(values),
        now=NOW,
    )
    schedule.collect_events()
    return schedule


def _call_id(fire: Fire) -> UUID:
    return uuid5(SCHEDULE_ID, fire.nominal.isoformat())


def _look(schedule: Schedule, now: datetime) -> list[Any]:
    """One look as the application makes it: plan, record; the calls to submit."""
    return schedule.apply(schedule.due_fires(now), now, _call_id)


def _events(schedule: Schedule) -> list[Any]:
    return list(schedule.collect_events())


def _names(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_created() -> None:
    schedule = Schedule.create(
        id=SCHEDULE_ID,
        tenant_id="acme",
        name="tick",
        template=TEMPLATE,
        spec=ScheduleSpec(cron="*/5 * * * *", timezone="Europe/Paris"),
        now=NOW,
    )
    [created] = _events(schedule)
    assert type(created).__name__ == "Created"
    assert created.TOPIC == "duecall:Schedule.Created"
    assert created.next_nominal == _nominal(5)
    assert created.tzdata == tzdata_version()
    assert created.template["request"]["method"] == "POST"
    assert created.spec["timezone"] == "Europe/Paris"
    assert (schedule.status, schedule.next_nominal) == (ScheduleStatus.ACTIVE, _nominal(5))


def test_a_spec_that_never_fires_again_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        Schedule.create(
            id=SCHEDULE_ID,
            tenant_id="acme",
            name="tick",
            template=TEMPLATE,
            spec=ScheduleSpec(cron="0 0 1 1 * * 2025"),
            now=NOW,
        )
    assert caught.value.field == "spec.cron"
    with pytest.raises(InvalidRequestError) as caught:
        Schedule.create(
            id=SCHEDULE_ID,
            tenant_id="acme",
            name="tick",
            template=TEMPLATE,
            spec=ScheduleSpec(cron="* * * * *", end_at=NOW - timedelta(days=1)),
            now=NOW,
        )
    assert caught.value.field == "spec.end_at"


@pytest.mark.parametrize(
    ("name", "template", "field"),
    [
        ("", TEMPLATE, "name"),
        ("x" * 201, TEMPLATE, "name"),
        ("tick", {}, "call.request"),
        ("tick", {"request": {"url": "https://a.example"}}, "call.request.method"),
        ("tick", {"request": {"method": "GET", "url": "ftp://a.example"}}, "call.request.url"),
        (
            "tick",
            {"request": {"method": "GET", "url": "https://a.example", "headers": {"Host": "b"}}},
            "call.request.headers",
        ),
        (
            "tick",
            {"request": {"method": "GET", "url": "https://a.example", "timeout_seconds": "5"}},
            "call.request.timeout_seconds",
        ),
        (
            "tick",
            {**TEMPLATE, "retry_policy": {"max_attempts": 0}},
            "call.retry_policy.max_attempts",
        ),
        ("tick", {**TEMPLATE, "retry_policy": {"attempts": 3}}, "call.retry_policy"),
        ("tick", {**TEMPLATE, "tags": ["a" * 201]}, "call.tags"),
        ("tick", {**TEMPLATE, "tags": "a"}, "call.tags"),
        ("tick", {**TEMPLATE, "due_at": "now"}, "call.due_at"),
    ],
)
def test_bad_names_and_templates_name_the_field(
    name: str, template: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        Schedule.create(
            id=SCHEDULE_ID,
            tenant_id="acme",
            name=name,
            template=template,
            spec=ScheduleSpec(cron="* * * * *"),
            now=NOW,
        )
    assert caught.value.field == field


def test_a_fire_records_why_when_and_which_call() -> None:
    schedule = _schedule(jitter_seconds=10)
    [order] = _look(schedule, _at(0.6))
    [fired] = _events(schedule)
    assert type(fired).__name__ == "Fired"
    assert fired.TOPIC == "duecall:Schedule.Fired"
    key = f"sched:{SCHEDULE_ID}:2026-01-01T12:01:00Z"
    assert (fired.nominal, fired.call_id, fired.idempotency_key) == (
        _nominal(1),
        order.call_id,
        key,
    )
    assert order.idempotency_key == key == fire_idempotency_key(SCHEDULE_ID, _nominal(1))
    assert _nominal(1) <= fired.actual == order.due_at < _nominal(1) + timedelta(seconds=10)
    assert fired.tzdata == tzdata_version()
    assert fired.next_nominal == schedule.next_nominal == _nominal(2)
    assert (schedule.runs, schedule.fired, schedule.last_fired) == (1, 1, _nominal(1))


def test_a_duplicate_look_or_fire_records_nothing() -> None:
    schedule = _schedule()
    plan = schedule.due_fires(_at(0.6))
    assert len(schedule.apply(plan, _at(0.6), _call_id)) == 1
    assert schedule.apply(plan, _at(0.6), _call_id) == []  # the same plan again
    assert _look(schedule, _at(0.7)) == []  # a second timer for the same minute
    [planned] = plan.fires
    assert schedule.record_fire(planned, uuid5(SCHEDULE_ID, "other"), _at(0.7)) is None
    assert not schedule.record_skip(planned.fire, SkipReason.OVERLAP, _at(0.7))
    assert _names(_events(schedule)) == ["Fired"]


def test_missed_fires_are_summed_up_in_caught_up() -> None:
    schedule = _schedule(on_missed="all", max_catchup=2, catchup_window_seconds=40)
    orders = _look(schedule, _at(5))  # down since 12:00:30; back at 12:05:30
    assert [o.nominal for o in orders] == [_nominal(3), _nominal(4), _nominal(5)]
    events = _events(schedule)
    assert _names(events) == ["CaughtUp", "Fired", "Fired", "Fired"]
    caught_up = events[0]
    assert (caught_up.missed, caught_up.caught_up, caught_up.paused) == (2, 2, 0)
    assert (caught_up.first_missed, caught_up.last_missed) == (_nominal(1), _nominal(2))
    assert caught_up.on_missed == "all"
    assert [e.catch_up for e in events[1:]] == [True, True, False]
    assert (schedule.missed, schedule.fired) == (2, 3)


def test_latest_fires_once_after_downtime() -> None:
    schedule = _schedule(on_missed="latest", catchup_window_seconds=5)
    orders = _look(schedule, _at(3.5))  # 12:04:00 missed by 25 s
    assert [o.nominal for o in orders] == [_nominal(4)]
    assert _look(schedule, _at(3.6)) == []
    assert schedule.missed == 3


def test_paused_schedules_do_not_fire_and_resume_by_on_missed() -> None:
    schedule = _schedule(on_missed="skip")
    assert schedule.pause(_at(0.1))
    assert not schedule.pause(_at(0.2))  # already paused
    assert schedule.due_fires(_at(3)).actions == ()
    assert schedule.resume(_at(3.2))
    assert not schedule.resume(_at(3.3))
    assert _look(schedule, _at(3.3)) == []  # 12:01-12:03 due while paused (12:03 too,
    # though within the catch-up window: it came while paused)
    events = _events(schedule)
    assert _names(events) == ["Paused", "Resumed", "CaughtUp"]
    assert (events[0].reason, events[2].missed, events[2].paused) == ("client", 3, 3)
    assert [o.nominal for o in _look(schedule, _at(3.6))] == [_nominal(4)]


def test_pause_after_failures_counts_failed_fires_in_a_row() -> None:
    schedule = _schedule(pause_after_failures=2)
    [first] = _look(schedule, _at(0.6))
    assert schedule.record_outcome(first.call_id, FireOutcome.FAILED, _at(0.7))
    assert not schedule.record_outcome(first.call_id, FireOutcome.FAILED, _at(0.7))  # duplicate
    [second] = _look(schedule, _at(1.6))
    assert schedule.record_outcome(second.call_id, FireOutcome.SUCCEEDED, _at(1.7))
    assert schedule.consecutive_failures == 0
    for minute in (2.6, 3.6):
        [order] = _look(schedule, _at(minute))
        schedule.record_outcome(order.call_id, FireOutcome.FAILED, _at(minute + 0.1))
    events = _events(schedule)
    assert _names(events)[-2:] == ["FireFailed", "Paused"]
    assert events[-2].consecutive_failures == 2
    assert (schedule.status, schedule.pause_reason) == (ScheduleStatus.PAUSED, "failures")
    assert (schedule.failed, schedule.succeeded) == (3, 1)
    schedule.resume(_at(4))
    assert schedule.consecutive_failures == 0


def test_outcomes_of_unknown_calls_are_ignored() -> None:
    schedule = _schedule()
    assert not schedule.record_outcome(uuid5(SCHEDULE_ID, "x"), FireOutcome.FAILED, NOW)
    assert _events(schedule) == []


def test_overlap_skip_records_why() -> None:
    schedule = _schedule(overlap="skip")
    _look(schedule, _at(0.6))
    assert _look(schedule, _at(1.6)) == []
    events = _events(schedule)
    assert _names(events) == ["Fired", "Skipped"]
    assert (events[1].reason, events[1].nominal) == ("overlap", _nominal(2))
    assert schedule.skipped == 1


def test_overlap_buffer_one_fires_the_buffered_time_when_the_call_ends() -> None:
    schedule = _schedule(overlap="buffer_one")
    [first] = _look(schedule, _at(0.6))
    assert _look(schedule, _at(1.6)) == []  # 12:02 waits
    assert _look(schedule, _at(2.6)) == []  # 12:03: the buffer is full
    schedule.record_outcome(first.call_id, FireOutcome.SUCCEEDED, _at(2.7))
    [released] = _look(schedule, _at(2.8))
    assert (released.nominal, released.due_at) == (_nominal(2), _at(2.8))
    events = _events(schedule)
    assert _names(events) == ["Fired", "Buffered", "Skipped", "FireSucceeded", "Fired"]
    assert events[-1].from_buffer
    assert schedule.buffered == []
    assert schedule.runs == 2


def test_an_outcome_keeps_the_live_wake_up_unless_a_buffered_fire_may_go() -> None:
    """``wake_version`` names the live wake-up: every event moves it, except a fire's
    outcome that leaves nothing buffered (no new wake-up is needed: the next nominal time
    is the same)."""
    schedule = _schedule(overlap="buffer_one")
    assert schedule.wake_version == 1
    [first] = _look(schedule, _at(0.6))
    assert schedule.wake_version == schedule.version == 2  # Fired
    assert schedule.wake_moved
    schedule.collect_events()
    schedule.record_outcome(first.call_id, FireOutcome.SUCCEEDED, _at(0.7))
    assert (schedule.wake_version, schedule.version) == (2, 3)  # kept
    assert not schedule.wake_moved
    [second] = _look(schedule, _at(1.6))
    assert _look(schedule, _at(2.6)) == []  # 12:03 is buffered
    assert schedule.wake_version == schedule.version
    schedule.record_outcome(second.call_id, FireOutcome.FAILED, _at(2.7))
    assert schedule.wake_version == schedule.version  # the buffered fire may go now


def test_overlap_cancel_other_cancels_then_fires() -> None:
    schedule = _schedule(overlap="cancel_other")
    [first] = _look(schedule, _at(0.6))
    [second] = _look(schedule, _at(1.6))
    assert second.cancel_call_ids == (first.call_id,)
    assert _events(schedule)[-1].cancelled_call_ids == [first.call_id]
    assert list(schedule.in_flight) == [second.call_id]
    assert not schedule.record_outcome(first.call_id, FireOutcome.CANCELLED, _at(1.7))  # late


def test_overlap_allow_all_fires_regardless() -> None:
    schedule = _schedule()
    _look(schedule, _at(0.6))
    _look(schedule, _at(1.6))
    assert len(schedule.in_flight) == 2


def test_a_trigger_fires_now_out_of_schedule() -> None:
    schedule = _schedule(max_runs=1)
    trigger_id = uuid5(SCHEDULE_ID, "manual")
    order = schedule.trigger(trigger_id, _at(0.2))
    assert order.idempotency_key == f"sched:{SCHEDULE_ID}:trigger:{trigger_id}"
    assert (order.due_at, schedule.triggered, schedule.runs) == (_at(0.2), 1, 0)
    assert schedule.record_outcome(trigger_id, FireOutcome.SUCCEEDED, _at(0.3))
    assert _names(_events(schedule)) == ["Triggered", "FireSucceeded"]


def test_max_runs_finishes_the_schedule() -> None:
    schedule = _schedule(max_runs=2)
    _look(schedule, _at(0.6))
    _look(schedule, _at(1.6))
    events = _events(schedule)
    assert _names(events) == ["Fired", "Fired", "Finished"]
    assert events[-1].reason == "max_runs"
    assert (schedule.status, schedule.next_nominal) == (ScheduleStatus.FINISHED, None)
    assert schedule.due_fires(_at(5)).actions == ()
    with pytest.raises(InvalidTransitionError, match="cannot pause a schedule that is finished"):
        schedule.pause(_at(5))


def test_end_at_finishes_the_schedule() -> None:
    schedule = _schedule(end_at="2026-01-01T12:02:00Z")
    _look(schedule, _at(0.6))
    _look(schedule, _at(1.6))
    events = _events(schedule)
    assert _names(events) == ["Fired", "Fired", "Finished"]
    assert events[-1].reason == "end_at"


def test_an_update_of_the_spec_takes_effect_from_its_time() -> None:
    schedule = _schedule(max_runs=1)
    _look(schedule, _at(0.6))
    assert schedule.status == ScheduleStatus.FINISHED
    schedule.update(_at(5), spec=ScheduleSpec(cron="*/10 * * * *", max_runs=3))
    assert (schedule.status, schedule.next_nominal) == (ScheduleStatus.ACTIVE, _nominal(10))
    assert schedule.cursor == _at(5)
    schedule.update(_at(6), name="renamed")  # the rest unchanged
    assert (schedule.name, schedule.cursor) == ("renamed", _at(5))
    with pytest.raises(InvalidRequestError) as caught:
        schedule.update(_at(7), spec=ScheduleSpec(cron="* * * * *", max_runs=1))
    assert caught.value.field == "spec.max_runs"


def test_deleted_schedules_do_nothing_more() -> None:
    schedule = _schedule()
    assert schedule.delete(_at(0.1))
    assert not schedule.delete(_at(0.2))
    assert schedule.due_fires(_at(3)).actions == ()
    for command in (
        lambda: schedule.trigger(uuid5(SCHEDULE_ID, "t"), _at(3)),
        lambda: schedule.update(_at(3), name="x"),
        lambda: schedule.resume(_at(3)),
        lambda: schedule.backfill(_at(-5), _at(0), _at(3)),
    ):
        with pytest.raises(InvalidTransitionError):
            command()
    assert schedule.status == ScheduleStatus.DELETED


def test_a_backfill_fires_past_times_with_their_own_keys() -> None:
    schedule = _schedule()
    plan = schedule.backfill(_nominal(0) - timedelta(minutes=2), _nominal(0), _at(0.1))
    orders = schedule.apply(plan, _at(0.1), _call_id)
    assert [o.idempotency_key for o in orders] == [
        fire_idempotency_key(SCHEDULE_ID, _nominal(0) - timedelta(minutes=m)) for m in (2, 1, 0)
    ]
    assert (schedule.runs, schedule.fired, schedule.cursor) == (0, 3, NOW)
    assert all(e.backfill for e in _events(schedule))


def test_a_dst_gap_skip_is_recorded() -> None:
    schedule = Schedule.create(
        id=SCHEDULE_ID,
        tenant_id="acme",
        name="tick",
        template=TEMPLATE,
        spec=ScheduleSpec.from_dict(
            {"cron": "30 2 * * *", "timezone": "America/New_York", "gap": "skip"}
        ),
        now=datetime(2026, 3, 7, 12, tzinfo=UTC),
    )
    schedule.collect_events()
    assert _look(schedule, datetime(2026, 3, 8, 7, 30, 1, tzinfo=UTC)) == []
    [skipped] = _events(schedule)
    assert (skipped.reason, skipped.dst_note) == ("dst_gap", "gap_skipped")
    assert skipped.local == datetime(2026, 3, 8, 2, 30)
    assert schedule.next_nominal == datetime(2026, 3, 9, 6, 30, tzinfo=UTC)


def test_replay_gives_the_same_schedule() -> None:
    schedule = Schedule.create(
        id=SCHEDULE_ID,
        tenant_id="acme",
        name="tick",
        template={**TEMPLATE, "tags": ["a"], "retry_policy": {"max_attempts": 2}},
        spec=ScheduleSpec.from_dict(
            {
                "cron": "* * * * *",
                "overlap": "buffer_all",
                "on_missed": "all",
                "catchup_window_seconds": 5,
            }
        ),
        now=NOW,
    )
    [first] = _look(schedule, _at(0.6))
    _look(schedule, _at(3))
    schedule.record_outcome(first.call_id, FireOutcome.FAILED, _at(3.1))
    _look(schedule, _at(3.2))
    schedule.trigger(uuid5(SCHEDULE_ID, "t"), _at(3.3))
    schedule.pause(_at(3.4))
    events = list(schedule.collect_events())
    replayed = reduce(lambda aggregate, e: e.mutate(aggregate), events, None)
    assert isinstance(replayed, Schedule)
    assert replayed.describe() == schedule.describe()
    for name in ("cursor", "in_flight", "buffered", "spec", "template"):
        assert getattr(replayed, name) == getattr(schedule, name)


def test_describe_redacts_secret_headers() -> None:
    template = {
        "request": {
            **TEMPLATE["request"],
            "headers": {"Authorization": "Bearer x", "X-Key": "k"},
            "secret_headers": ["x-key"],
        }
    }
    schedule = Schedule.create(
        id=SCHEDULE_ID,
        tenant_id="acme",
        name="tick",
        template=template,
        spec=ScheduleSpec(cron="* * * * *"),
        now=NOW,
    )
    headers = schedule.describe()["call"]["request"]["headers"]
    assert headers == {"Authorization": "[REDACTED]", "X-Key": "[REDACTED]"}
    assert schedule.describe()["counts"]["fired"] == 0


def test_record_fire_refuses_a_buffered_time_it_does_not_hold() -> None:
    schedule = _schedule(overlap="buffer_one")
    fire = Fire(_nominal(9), _nominal(9).replace(tzinfo=None))
    planned = PlannedFire(fire, due_at=_at(9), from_buffer=True)
    assert schedule.record_fire(planned, _call_id(fire), _at(9)) is None


def test_a_snapshot_through_the_event_store_codec_is_the_same_schedule() -> None:
    """Schedule.Snapshot keeps its state JSON-able (spec as a dict, calls in flight keyed by
    string, buffered fires as lists) and restores the very objects."""
    schedule = _schedule(overlap="buffer_all", on_missed="all", catchup_window_seconds=5)
    _look(schedule, _at(0.6))
    _look(schedule, _at(3))
    schedule.collect_events()
    assert schedule.in_flight
    assert schedule.buffered

    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DatetimeAsISO(), DecimalAsStr()):
        transcoder.register(transcoding)
    mapper: Mapper[UUID] = Mapper(transcoder=transcoder)
    stored = mapper.to_stored_event(Schedule.Snapshot.take(schedule))
    assert stored.topic == "duecall:Schedule.Snapshot"
    restored = mapper.to_domain_event(stored).mutate(None)

    assert isinstance(restored, Schedule)
    assert vars(restored) == vars(schedule)
    assert restored.describe() == schedule.describe()
