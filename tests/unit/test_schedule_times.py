"""Fire times: intervals and their phase, deterministic jitter, idempotency keys, and
properties of the cron series (ascending, distinct, resumable, and equal to a brute-force
oracle across DST transitions)."""

from datetime import UTC, datetime, timedelta
from uuid import UUID

from cronsim import CronSim
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.cron import parse_cron
from domain.schedule_spec import ScheduleSpec
from domain.schedule_times import (
    fire_idempotency_key,
    fires_between,
    jitter_offset,
    next_fires,
    trigger_idempotency_key,
)
from domain.wall_clock import DstNote, FoldPolicy, GapPolicy, load_zone, to_utc, to_wall

SCHEDULE_ID = UUID("0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b")
AFTER = datetime(2026, 3, 28, 22, tzinfo=UTC)


def _walls(spec: ScheduleSpec, count: int, after: datetime = AFTER) -> list[str]:
    return [
        to_wall(f.nominal, spec.zone).strftime("%m-%d %H:%M")
        for f in next_fires(spec, after, count)
    ]


def test_an_interval_keeps_its_phase_across_a_dst_change() -> None:
    """Every 15 minutes starting 00:05: :05, :20, :35, :50 on both sides of London's gap."""
    spec = ScheduleSpec(interval_seconds=900, starting="00:05", timezone="Europe/London")
    after = datetime(2026, 3, 29, 0, 40, tzinfo=UTC)
    assert _walls(spec, 4, after) == ["03-29 00:50", "03-29 02:05", "03-29 02:20", "03-29 02:35"]


def test_an_interval_is_real_time_not_wall_time() -> None:
    """Every 24 hours from 09:00 EST: 10:00 once summer time starts (use cron for 09:00)."""
    spec = ScheduleSpec(
        interval_seconds=86400,
        starting="09:00",
        timezone="America/New_York",
        start_at=datetime(2026, 3, 6, tzinfo=UTC),
    )
    assert _walls(spec, 4, datetime(2026, 3, 6, tzinfo=UTC)) == [
        "03-06 09:00",
        "03-07 09:00",
        "03-08 10:00",
        "03-09 10:00",
    ]


def test_an_interval_anchor_or_the_epoch_gives_the_phase() -> None:
    anchored = ScheduleSpec(interval_seconds=3600, anchor=datetime(2020, 5, 5, 7, 30, tzinfo=UTC))
    assert _walls(anchored, 2) == ["03-28 22:30", "03-28 23:30"]
    epoch = ScheduleSpec(interval_seconds=7)
    fires = next_fires(epoch, AFTER, 3)
    assert all(int(f.nominal.timestamp()) % 7 == 0 for f in fires)
    assert fires[0].nominal - AFTER <= timedelta(seconds=7)


def test_an_interval_honours_start_end_and_max_runs() -> None:
    spec = ScheduleSpec(
        interval_seconds=600,
        start_at=datetime(2026, 1, 1, 10, 3, tzinfo=UTC),
        end_at=datetime(2026, 1, 1, 10, 40, tzinfo=UTC),
    )
    # no phase given: counted from start_at
    assert _walls(spec, 9, datetime(2026, 1, 1, tzinfo=UTC)) == [
        "01-01 10:03",
        "01-01 10:13",
        "01-01 10:23",
        "01-01 10:33",
    ]
    capped = ScheduleSpec(interval_seconds=1, max_runs=2)
    assert len(next_fires(capped, AFTER, 10)) == 2


def test_fires_between_is_half_open() -> None:
    spec = ScheduleSpec(cron="0 * * * *")
    start, end = datetime(2026, 1, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 4, tzinfo=UTC)
    hours = [f.nominal.hour for f in fires_between(spec, start, end, 100)]
    assert hours == [2, 3, 4]
    assert len(fires_between(spec, start, end, 2)) == 2


def test_jitter_is_deterministic_and_within_bounds() -> None:
    nominal = datetime(2026, 1, 1, 9, tzinfo=UTC)
    first = jitter_offset(SCHEDULE_ID, nominal, 30.0)
    assert first == jitter_offset(SCHEDULE_ID, nominal, 30.0)
    assert first == jitter_offset(
        str(SCHEDULE_ID), nominal.astimezone(load_zone("Asia/Tokyo")), 30.0
    )
    offsets = {jitter_offset(SCHEDULE_ID, nominal + timedelta(minutes=m), 30.0) for m in range(50)}
    assert len(offsets) > 40  # spread out
    assert all(timedelta(0) <= o < timedelta(seconds=30) for o in offsets)
    assert jitter_offset(SCHEDULE_ID, nominal, 0.0) == timedelta(0)
    other = UUID("0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7c")
    assert jitter_offset(other, nominal, 30.0) != first


def test_idempotency_keys() -> None:
    nominal = datetime(2026, 3, 8, 3, 30, tzinfo=load_zone("America/New_York"))
    key = f"sched:{SCHEDULE_ID}:2026-03-08T07:30:00Z"
    assert fire_idempotency_key(SCHEDULE_ID, nominal) == key
    with_micros = nominal.replace(microsecond=1500)
    assert fire_idempotency_key(SCHEDULE_ID, with_micros).endswith("07:30:00.001500Z")
    assert trigger_idempotency_key(SCHEDULE_ID, "abc") == f"sched:{SCHEDULE_ID}:trigger:abc"


# --- properties over crons, zones and policies around real DST transitions

TRANSITIONS = [
    ("America/New_York", datetime(2026, 3, 8, 7, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 11, 1, 6, tzinfo=UTC)),
    ("Europe/London", datetime(2026, 3, 29, 1, tzinfo=UTC)),
    ("Europe/London", datetime(2026, 10, 25, 1, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 10, 3, 15, 30, tzinfo=UTC)),
    ("Pacific/Apia", datetime(2011, 12, 30, 10, tzinfo=UTC)),
    ("Asia/Kolkata", datetime(2026, 3, 8, 7, tzinfo=UTC)),
]

crons = st.builds(
    " ".join,
    st.tuples(
        st.sampled_from(["*/10", "0", "15", "30,45", "5-20/5", "*/7"]),
        st.sampled_from(["*", "0-3", "1", "2", "1,2", "*/2", "23,0,1"]),
        st.sampled_from(["*", "*", "L", "1-31/2"]),
        st.just("*"),
        st.sampled_from(["*", "*", "0", "1-5", "SAT,SUN"]),
    ),
)
cases = st.tuples(
    crons,
    st.sampled_from(TRANSITIONS),
    st.sampled_from(["shift", "skip"]),
    st.sampled_from(["first", "last", "both"]),
    st.integers(min_value=-36 * 60, max_value=12 * 60),  # minutes from the transition
)


def _spec(case: tuple[str, tuple[str, datetime], str, str, int]) -> tuple[ScheduleSpec, datetime]:
    cron, (zone, transition), gap, fold, minutes = case
    spec = ScheduleSpec(cron=cron, timezone=zone, gap=GapPolicy(gap), fold=FoldPolicy(fold))
    return spec, transition + timedelta(minutes=minutes, seconds=17)


@settings(max_examples=60, deadline=None)
@given(cases)
def test_nominal_times_rise_and_resume_from_any_of_them(
    case: tuple[str, tuple[str, datetime], str, str, int],
) -> None:
    spec, after = _spec(case)
    fires = next_fires(spec, after, 12, include_skipped=True)
    nominals = [f.nominal for f in fires]
    assert nominals == sorted(set(nominals))
    assert all(n > after for n in nominals)
    for i, fire in enumerate(fires):  # resuming after any one gives the same rest
        assert next_fires(spec, fire.nominal, 12 - i - 1, include_skipped=True) == fires[i + 1 :]


@settings(max_examples=60, deadline=None)
@given(cases)
def test_each_fire_maps_back_to_a_matching_wall_time(
    case: tuple[str, tuple[str, datetime], str, str, int],
) -> None:
    spec, after = _spec(case)
    six = parse_cron(spec.cron or "").six_fields
    zone = spec.zone
    for fire in next_fires(spec, after, 12, include_skipped=True):
        assert next(iter(CronSim(six, fire.local - timedelta(seconds=1)))) == fire.local
        if fire.dst_note is None:
            assert to_wall(fire.nominal, zone) == fire.local
        elif fire.dst_note in (DstNote.GAP_SHIFTED, DstNote.GAP_SKIPPED):
            assert to_wall(to_utc(fire.local, zone), zone) != fire.local  # did not exist
            assert fire.nominal == to_utc(fire.local, zone, fold=0)
        else:
            fold = 0 if fire.dst_note is DstNote.FOLD_FIRST else 1
            assert fire.nominal == to_utc(fire.local, zone, fold=fold)
            assert to_utc(fire.local, zone, 0) != to_utc(fire.local, zone, 1)


@settings(max_examples=40, deadline=None)
@given(cases)
def test_the_series_equals_a_brute_force_oracle(
    case: tuple[str, tuple[str, datetime], str, str, int],
) -> None:
    """Every minute's wall time, read both ways round a transition, by the policy's rules."""
    spec, after = _spec(case)
    until = after + timedelta(hours=30)
    six = parse_cron(spec.cron or "").six_fields
    zone = spec.zone
    expected: set[datetime] = set()
    wall = to_wall(after, zone).replace(second=0) - timedelta(days=1)
    while wall < to_wall(until, zone) + timedelta(days=1):
        if next(iter(CronSim(six, wall - timedelta(seconds=1)))) == wall:
            first, second = to_utc(wall, zone, 0), to_utc(wall, zone, 1)
            exists = to_wall(first, zone) == wall or to_wall(second, zone) == wall
            if first == second or (not exists and spec.gap == "shift"):
                expected.add(first)
            elif exists:
                expected.update(
                    {"first": [first], "last": [second], "both": [first, second]}[spec.fold]
                )
        wall += timedelta(minutes=1)
    wanted = sorted(t for t in expected if after < t <= until)
    assert [f.nominal for f in fires_between(spec, after, until, 10_000)] == wanted
