"""Golden DST tests: spring gaps and autumn folds under every policy, in New York, London,
Lord Howe (a 30-minute shift) and Apia (2011-12-30 did not exist).

Each row: the nominal UTC time, the wall-clock time the cron matched, and the DST note.
"""

from datetime import UTC, datetime

import pytest

from domain.schedule_spec import ScheduleSpec
from domain.schedule_times import next_fires
from domain.wall_clock import FoldPolicy, GapPolicy

Row = tuple[str, str, str | None]


def _fires(
    cron: str, zone: str, after: datetime, count: int, *, gap: str = "shift", fold: str = "first"
) -> list[Row]:
    spec = ScheduleSpec(cron=cron, timezone=zone, gap=GapPolicy(gap), fold=FoldPolicy(fold))
    return [
        (
            f.nominal.strftime("%Y-%m-%d %H:%M"),
            f.local.strftime("%Y-%m-%d %H:%M"),
            None if f.dst_note is None else str(f.dst_note),
        )
        for f in next_fires(spec, after, count, include_skipped=True)
    ]


# --- America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST

NY = "America/New_York"
NY_SPRING = datetime(2026, 3, 7, 12, tzinfo=UTC)
NY_AUTUMN = datetime(2026, 10, 31, 12, tzinfo=UTC)


def test_new_york_spring_gap_shift() -> None:
    """02:30 does not exist on 03-08: fired an hour later, at 03:30 EDT."""
    assert _fires("30 2 * * *", NY, NY_SPRING, 3) == [
        ("2026-03-08 07:30", "2026-03-08 02:30", "gap_shifted"),
        ("2026-03-09 06:30", "2026-03-09 02:30", None),
        ("2026-03-10 06:30", "2026-03-10 02:30", None),
    ]


def test_new_york_spring_gap_skip() -> None:
    """The mark says which wall time was skipped; it is no fire (next_fires leaves it out)."""
    assert _fires("30 2 * * *", NY, NY_SPRING, 2, gap="skip") == [
        ("2026-03-08 07:30", "2026-03-08 02:30", "gap_skipped"),
        ("2026-03-09 06:30", "2026-03-09 02:30", None),
    ]
    spec = ScheduleSpec(cron="30 2 * * *", timezone=NY, gap=GapPolicy.SKIP)
    assert [f.nominal.day for f in next_fires(spec, NY_SPRING, 2)] == [9, 10]


@pytest.mark.parametrize("fold", ["first", "last", "both"])
def test_new_york_autumn_0230_happens_once(fold: str) -> None:
    """The repeated hour is 01:00-02:00: 02:30 on 11-01 is an ordinary time (EST)."""
    assert _fires("30 2 * * *", NY, NY_AUTUMN, 2, fold=fold) == [
        ("2026-11-01 07:30", "2026-11-01 02:30", None),  # 02:30 EST
        ("2026-11-02 07:30", "2026-11-02 02:30", None),
    ]


def test_new_york_autumn_fold_first() -> None:
    assert _fires("30 1 * * *", NY, NY_AUTUMN, 2) == [
        ("2026-11-01 05:30", "2026-11-01 01:30", "fold_first"),  # 01:30 EDT
        ("2026-11-02 06:30", "2026-11-02 01:30", None),
    ]


def test_new_york_autumn_fold_last() -> None:
    assert _fires("30 1 * * *", NY, NY_AUTUMN, 2, fold="last") == [
        ("2026-11-01 06:30", "2026-11-01 01:30", "fold_second"),  # 01:30 EST
        ("2026-11-02 06:30", "2026-11-02 01:30", None),
    ]


def test_new_york_autumn_fold_both() -> None:
    assert _fires("30 1 * * *", NY, NY_AUTUMN, 3, fold="both") == [
        ("2026-11-01 05:30", "2026-11-01 01:30", "fold_first"),
        ("2026-11-01 06:30", "2026-11-01 01:30", "fold_second"),
        ("2026-11-02 06:30", "2026-11-02 01:30", None),
    ]


def test_new_york_fold_both_interleaves_by_instant() -> None:
    """Every 20 minutes through the repeated hour: both passes, in time order."""
    fires = _fires("*/20 1-2 * * *", NY, datetime(2026, 11, 1, 4, tzinfo=UTC), 7, fold="both")
    assert [(nominal[11:], local[11:]) for nominal, local, _ in fires] == [
        ("05:00", "01:00"),
        ("05:20", "01:20"),
        ("05:40", "01:40"),  # EDT
        ("06:00", "01:00"),
        ("06:20", "01:20"),
        ("06:40", "01:40"),  # EST
        ("07:00", "02:00"),
    ]


def test_new_york_gap_shift_lands_on_other_fires_once() -> None:
    """Every 30 minutes: 02:00 and 02:30 shift onto 03:00 and 03:30, which fire anyway:
    each instant fires once."""
    fires = _fires("*/30 * * * *", NY, datetime(2026, 3, 8, 6, 15, tzinfo=UTC), 4)
    assert fires == [
        ("2026-03-08 06:30", "2026-03-08 01:30", None),
        ("2026-03-08 07:00", "2026-03-08 03:00", None),
        ("2026-03-08 07:30", "2026-03-08 03:30", None),
        ("2026-03-08 08:00", "2026-03-08 04:00", None),
    ]


# --- Europe/London: 2026-03-29 01:00 GMT -> 02:00 BST; 2026-10-25 02:00 BST -> 01:00 GMT

LONDON = "Europe/London"


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        (
            "shift",
            [
                ("2026-03-29 01:30", "2026-03-29 01:30", "gap_shifted"),  # 02:30 BST
                ("2026-03-30 00:30", "2026-03-30 01:30", None),
            ],
        ),
        (
            "skip",
            [
                ("2026-03-29 01:30", "2026-03-29 01:30", "gap_skipped"),
                ("2026-03-30 00:30", "2026-03-30 01:30", None),
            ],
        ),
    ],
)
def test_london_spring_gap(gap: str, expected: list[Row]) -> None:
    assert (
        _fires("30 1 * * *", LONDON, datetime(2026, 3, 28, 12, tzinfo=UTC), 2, gap=gap) == expected
    )


@pytest.mark.parametrize(
    ("fold", "expected"),
    [
        ("first", [("2026-10-25 00:30", "2026-10-25 01:30", "fold_first")]),  # BST
        ("last", [("2026-10-25 01:30", "2026-10-25 01:30", "fold_second")]),  # GMT
        (
            "both",
            [
                ("2026-10-25 00:30", "2026-10-25 01:30", "fold_first"),
                ("2026-10-25 01:30", "2026-10-25 01:30", "fold_second"),
            ],
        ),
    ],
)
def test_london_autumn_fold(fold: str, expected: list[Row]) -> None:
    fires = _fires("30 1 * * *", LONDON, datetime(2026, 10, 24, 12, tzinfo=UTC), 3, fold=fold)
    assert fires[: len(expected)] == expected
    assert fires[len(expected)] == ("2026-10-26 01:30", "2026-10-26 01:30", None)


# --- Australia/Lord_Howe: +10:30 standard, +11 summer, a 30-minute shift.
# 2026-04-05 02:00 (+11) -> 01:30 (+10:30); 2026-10-04 02:00 (+10:30) -> 02:30 (+11).

LORD_HOWE = "Australia/Lord_Howe"


@pytest.mark.parametrize(("gap", "note"), [("shift", "gap_shifted"), ("skip", "gap_skipped")])
def test_lord_howe_spring_gap_is_half_an_hour(gap: str, note: str) -> None:
    """02:15 on 10-04 does not exist: shifted by the gap's 30 minutes, to 02:45 (+11)."""
    assert _fires("15 2 * * *", LORD_HOWE, datetime(2026, 10, 2, 12, tzinfo=UTC), 3, gap=gap) == [
        ("2026-10-02 15:45", "2026-10-03 02:15", None),  # +10:30
        ("2026-10-03 15:45", "2026-10-04 02:15", note),  # 02:45 +11 when shifted
        ("2026-10-04 15:15", "2026-10-05 02:15", None),  # +11
    ]


def test_lord_howe_autumn_0215_happens_once() -> None:
    """The repeated half hour is 01:30-02:00: 02:15 on 04-05 happens once."""
    assert _fires(
        "15 2 * * *", LORD_HOWE, datetime(2026, 4, 3, 12, tzinfo=UTC), 3, fold="both"
    ) == [
        ("2026-04-03 15:15", "2026-04-04 02:15", None),  # +11
        ("2026-04-04 15:45", "2026-04-05 02:15", None),  # +10:30
        ("2026-04-05 15:45", "2026-04-06 02:15", None),
    ]


@pytest.mark.parametrize(
    ("fold", "expected"),
    [
        ("first", [("2026-04-04 14:45", "fold_first")]),
        ("last", [("2026-04-04 15:15", "fold_second")]),
        ("both", [("2026-04-04 14:45", "fold_first"), ("2026-04-04 15:15", "fold_second")]),
    ],
)
def test_lord_howe_autumn_fold_is_half_an_hour(fold: str, expected: list[tuple[str, str]]) -> None:
    """01:45 on 04-05 happens twice, 30 minutes apart."""
    fires = _fires("45 1 * * *", LORD_HOWE, datetime(2026, 4, 4, 12, tzinfo=UTC), 3, fold=fold)
    assert [(nominal, note) for nominal, local, note in fires[: len(expected)]] == expected
    assert all(local == "2026-04-05 01:45" for _, local, _ in fires[: len(expected)])


# --- Pacific/Apia: 2011-12-29 23:59:59 (-10) was followed by 2011-12-31 00:00 (+14).

APIA = "Pacific/Apia"
APIA_AFTER = datetime(2011, 12, 28, 12, tzinfo=UTC)


@pytest.mark.parametrize("gap", ["shift", "skip"])
def test_apia_daily_fires_on_the_29th_then_the_31st(gap: str) -> None:
    """Noon on the 30th never happened. Shifted by the gap (24 hours) it is noon on the 31st,
    which fires anyway: one fire at that instant, not two. Skipped, its mark falls on that
    same instant and gives way to the fire. Either way: the 29th, then the 31st."""
    assert _fires("0 12 * * *", APIA, APIA_AFTER, 3, gap=gap) == [
        ("2011-12-28 22:00", "2011-12-28 12:00", None),
        ("2011-12-29 22:00", "2011-12-29 12:00", None),  # 12:00 -10:00 on the 29th
        ("2011-12-30 22:00", "2011-12-31 12:00", None),  # 12:00 +14:00 on the 31st
    ]


def test_apia_a_fire_only_on_the_30th() -> None:
    """A cron for the 30th alone: shift fires it 24 hours later (noon on the 31st); skip
    leaves 2011 without it."""
    shifted = _fires("0 12 30 12 *", APIA, APIA_AFTER, 2)
    assert shifted == [
        ("2011-12-30 22:00", "2011-12-30 12:00", "gap_shifted"),
        ("2012-12-29 22:00", "2012-12-30 12:00", None),  # +14 (summer time) in 2012
    ]
    skipped = _fires("0 12 30 12 *", APIA, APIA_AFTER, 2, gap="skip")
    assert skipped[0] == ("2011-12-30 22:00", "2011-12-30 12:00", "gap_skipped")
    spec = ScheduleSpec(cron="0 12 30 12 *", timezone=APIA, gap=GapPolicy.SKIP)
    assert next_fires(spec, APIA_AFTER, 1)[0].nominal.year == 2012
