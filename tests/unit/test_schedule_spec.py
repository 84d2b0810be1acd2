"""A schedule's spec: cron forms (5, 6, 7 fields, L, 5L, MON#2), checks that name the field,
specs that never fire, and the payload round trip."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.cron import parse_cron
from domain.errors import InvalidRequestError
from domain.schedule_spec import OnMissed, OverlapPolicy, ScheduleSpec
from domain.schedule_times import next_fires
from domain.wall_clock import FoldPolicy, GapPolicy, tzdata_version

AFTER = datetime(2026, 1, 1, tzinfo=UTC)


def _nominals(spec: ScheduleSpec, count: int, after: datetime = AFTER) -> list[str]:
    return [f.nominal.strftime("%Y-%m-%d %H:%M:%S") for f in next_fires(spec, after, count)]


def _locals(spec: ScheduleSpec, count: int, after: datetime = AFTER) -> list[str]:
    return [f.local.strftime("%Y-%m-%d %H:%M:%S") for f in next_fires(spec, after, count)]


def _field_of(values: dict[str, Any]) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        ScheduleSpec.from_dict(values)
    return caught.value.field


def test_five_fields_are_standard_cron() -> None:
    spec = ScheduleSpec(cron="*/20 9 * * MON-FRI")
    assert _nominals(spec, 4) == [
        "2026-01-01 09:00:00",  # a Thursday
        "2026-01-01 09:20:00",
        "2026-01-01 09:40:00",
        "2026-01-02 09:00:00",
    ]


def test_last_day_of_month() -> None:
    assert _locals(ScheduleSpec(cron="0 12 L * *"), 3) == [
        "2026-01-31 12:00:00",
        "2026-02-28 12:00:00",
        "2026-03-31 12:00:00",
    ]
    leap = datetime(2028, 1, 31, 13, tzinfo=UTC)
    assert _locals(ScheduleSpec(cron="0 12 L * *"), 1, leap) == ["2028-02-29 12:00:00"]


def test_last_friday_of_month() -> None:
    assert _locals(ScheduleSpec(cron="0 18 * * 5L"), 3) == [
        "2026-01-30 18:00:00",
        "2026-02-27 18:00:00",
        "2026-03-27 18:00:00",
    ]


def test_second_monday_of_month() -> None:
    assert _locals(ScheduleSpec(cron="0 9 * * MON#2"), 3) == [
        "2026-01-12 09:00:00",
        "2026-02-09 09:00:00",
        "2026-03-09 09:00:00",
    ]


def test_six_fields_lead_with_seconds() -> None:
    assert _locals(ScheduleSpec(cron="*/20 0 0 * * *"), 4) == [
        "2026-01-01 00:00:20",
        "2026-01-01 00:00:40",
        "2026-01-02 00:00:00",
        "2026-01-02 00:00:20",
    ]


def test_seven_fields_end_with_a_year() -> None:
    spec = ScheduleSpec(cron="0 0 9 1 1 * 2027,2030-2031")
    assert _locals(spec, 5) == [
        "2027-01-01 09:00:00",
        "2030-01-01 09:00:00",
        "2031-01-01 09:00:00",
    ]
    stepped = ScheduleSpec(cron="30 15 10 29 2 * 2000/4")
    assert _locals(stepped, 2) == ["2028-02-29 10:15:30", "2032-02-29 10:15:30"]


def test_macros_and_question_marks() -> None:
    assert _locals(ScheduleSpec(cron="@daily"), 1) == ["2026-01-02 00:00:00"]
    assert _locals(ScheduleSpec(cron="0 15 10 ? * MON"), 1) == ["2026-01-05 10:15:00"]


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("* * * *", "5 to 7 fields"),
        ("* * * * * * * *", "5 to 7 fields"),
        ("61 * * * *", "bad minute"),
        ("* 24 * * *", "bad hour"),
        ("* * 32 * *", "bad day-of-month"),
        ("* * * 13 *", "bad month"),
        ("* * * * MON#6", "bad day-of-week"),
        ("* * * * * * 1969", "bad year"),
        ("* * * * * * 2030-2020", "bad year"),
        ("* * * * * * 20x0", "bad year"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("0 0 0 29 2 * 2026", "never fires"),
        ("x" * 201, "at most 200"),
        ("0 0 * * *\t", "printable ASCII"),
        ("0 0 * * \u00e9", "printable ASCII"),
    ],
)
def test_a_bad_cron_names_spec_cron(cron: str, problem: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        ScheduleSpec(cron=cron)
    assert caught.value.field == "spec.cron"
    assert problem in caught.value.message


def test_all_times_in_a_skipped_gap_never_fire() -> None:
    """02:30 on 2026-03-08 does not exist in New York; with gap=skip the spec is empty."""
    with pytest.raises(InvalidRequestError, match="never fires") as caught:
        ScheduleSpec(cron="0 30 2 8 3 * 2026", timezone="America/New_York", gap=GapPolicy.SKIP)
    assert caught.value.field == "spec.cron"
    shifted = ScheduleSpec(cron="0 30 2 8 3 * 2026", timezone="America/New_York")
    assert _nominals(shifted, 2) == ["2026-03-08 07:30:00"]  # 03:30 EDT


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({}, "spec.cron"),
        ({"cron": "* * * * *", "interval_seconds": 60}, "spec.cron"),
        ({"cron": 5}, "spec.cron"),
        ({"interval_seconds": 0}, "spec.interval_seconds"),
        ({"interval_seconds": 0.5}, "spec.interval_seconds"),
        ({"interval_seconds": True}, "spec.interval_seconds"),
        ({"interval_seconds": "60"}, "spec.interval_seconds"),
        ({"interval_seconds": 60, "starting": "24:00"}, "spec.starting"),
        ({"interval_seconds": 60, "starting": "9:00"}, "spec.starting"),
        (
            {"interval_seconds": 60, "starting": "00:05", "anchor": "2026-01-01T00:00:00Z"},
            "spec.anchor",
        ),
        ({"cron": "* * * * *", "starting": "00:05"}, "spec.starting"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus_Mons"}, "spec.timezone"),
        ({"cron": "* * * * *", "timezone": "../etc/passwd"}, "spec.timezone"),
        ({"cron": "* * * * *", "timezone": "A" * 65}, "spec.timezone"),
        ({"cron": "* * * * *", "timezone": None}, "spec.timezone"),
        ({"cron": "* * * * *", "start_at": "2026-01-01T00:00:00"}, "spec.start_at"),
        ({"cron": "* * * * *", "start_at": "tomorrow"}, "spec.start_at"),
        ({"cron": "* * * * *", "end_at": "2300-01-01T00:00:00Z"}, "spec.end_at"),
        (
            {
                "cron": "* * * * *",
                "start_at": "2026-02-01T00:00:00Z",
                "end_at": "2026-01-01T00:00:00Z",
            },
            "spec.end_at",
        ),
        ({"cron": "* * * * *", "max_runs": 0}, "spec.max_runs"),
        ({"cron": "* * * * *", "gap": "forward"}, "spec.gap"),
        ({"cron": "* * * * *", "fold": "second"}, "spec.fold"),
        ({"cron": "* * * * *", "on_missed": "some"}, "spec.on_missed"),
        ({"cron": "* * * * *", "overlap": "queue"}, "spec.overlap"),
        ({"cron": "* * * * *", "catchup_window_seconds": 0}, "spec.catchup_window_seconds"),
        ({"cron": "* * * * *", "max_catchup": 1001}, "spec.max_catchup"),
        ({"cron": "* * * * *", "catchup_rate_per_second": 0}, "spec.catchup_rate_per_second"),
        (
            {"cron": "* * * * *", "catchup_rate_per_second": float("nan")},
            "spec.catchup_rate_per_second",
        ),
        ({"cron": "* * * * *", "jitter_seconds": -1}, "spec.jitter_seconds"),
        ({"cron": "* * * * *", "jitter_seconds": 3601}, "spec.jitter_seconds"),
        ({"cron": "* * * * *", "pause_after_failures": 0}, "spec.pause_after_failures"),
        ({"cron": "* * * * *", "every": "1m"}, "spec.every"),
    ],
)
def test_each_error_names_its_field(values: dict[str, Any], field: str) -> None:
    assert _field_of(values) == field


def test_a_window_with_no_fire_names_the_end() -> None:
    values = {
        "cron": "0 9 * * *",
        "timezone": "Europe/London",
        "start_at": "2026-01-01T10:00:00Z",
        "end_at": "2026-01-02T08:00:00Z",
    }
    assert _field_of(values) == "spec.end_at"
    interval = {
        "interval_seconds": 3600,
        "anchor": "2026-01-01T00:30:00Z",
        "start_at": "2026-01-01T01:00:00Z",
        "end_at": "2026-01-01T01:20:00Z",
    }
    assert _field_of(interval) == "spec.end_at"
    past_years = {"cron": "0 0 1 1 * * 2020", "start_at": "2026-01-01T00:00:00Z"}
    assert _field_of(past_years) == "spec.start_at"


def test_round_trip_through_a_payload() -> None:
    spec = ScheduleSpec.from_dict(
        {
            "cron": "30 2 * * *",
            "timezone": "America/New_York",
            "start_at": "2026-01-01T00:00:00+01:00",
            "end_at": "2027-01-01T00:00:00Z",
            "max_runs": 100.0,
            "gap": "skip",
            "fold": "both",
            "on_missed": "all",
            "max_catchup": 5,
            "catchup_rate_per_second": 2,
            "overlap": "buffer_one",
            "jitter_seconds": 30,
            "pause_after_failures": 3,
        }
    )
    payload = spec.to_dict()
    assert payload["start_at"] == "2025-12-31T23:00:00+00:00"  # normalised to UTC
    assert payload["max_runs"] == 100
    assert payload["catchup_rate_per_second"] == 2.0
    assert ScheduleSpec.from_dict(payload) == spec
    assert ScheduleSpec.restored(payload) == spec
    restored = ScheduleSpec.restored(payload)
    assert restored.gap is GapPolicy.SKIP
    assert restored.fold is FoldPolicy.BOTH
    assert restored.on_missed is OnMissed.ALL
    assert restored.overlap is OverlapPolicy.BUFFER_ONE


def test_defaults() -> None:
    spec = ScheduleSpec(cron="* * * * *")
    assert (spec.timezone, spec.gap, spec.fold) == ("UTC", GapPolicy.SHIFT, FoldPolicy.FIRST)
    assert (spec.on_missed, spec.overlap) == (OnMissed.LATEST, OverlapPolicy.ALLOW_ALL)
    assert spec.catchup_window_seconds == 60


def test_parsing_is_cached_and_keeps_the_text() -> None:
    assert parse_cron("0 9 * * 1") is parse_cron("0 9 * * 1")
    assert parse_cron(" 0 9 * * 1 ").six_fields == "0 0 9 * * 1"


def test_tzdata_version_names_a_release() -> None:
    version = tzdata_version()
    assert version == "unknown" or version[:4].isdigit()


def test_start_and_end_bound_the_fires() -> None:
    spec = ScheduleSpec(
        cron="0 * * * *",
        start_at=datetime(2026, 1, 1, 5, tzinfo=UTC),
        end_at=datetime(2026, 1, 1, 7, tzinfo=UTC),
    )
    assert _nominals(spec, 10) == [
        "2026-01-01 05:00:00",  # start_at is inclusive
        "2026-01-01 06:00:00",
        "2026-01-01 07:00:00",  # ... and so is end_at
    ]
    assert next_fires(spec, datetime(2026, 1, 1, 7, tzinfo=UTC), 1) == []


def test_max_runs_counts_the_runs_made() -> None:
    spec = ScheduleSpec(cron="0 * * * *", max_runs=3)
    assert len(next_fires(spec, AFTER, 10)) == 3
    assert len(next_fires(spec, AFTER, 10, runs_done=2)) == 1
    assert next_fires(spec, AFTER + timedelta(days=9), 10, runs_done=3) == []
