"""Reading a Retry-After header: delay-seconds or an HTTP date, anything else is None."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.retry_after import parse_retry_after

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("2", 2.0), ("120", 120.0), (" 7 ", 7.0), ("0042", 42.0), ("86400", 86400.0)],
)
def test_delay_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_an_http_date_in_the_future_is_the_seconds_until_then() -> None:
    assert parse_retry_after("Fri, 14 Mar 2025 09:27:23 GMT", NOW) == 30.0
    later = format_datetime(NOW + timedelta(hours=1), usegmt=True)
    assert parse_retry_after(later, NOW) == 3600.0


def test_an_http_date_with_a_numeric_offset_is_read_in_that_zone() -> None:
    assert parse_retry_after("Fri, 14 Mar 2025 10:26:53 +0100", NOW) == 0.0
    assert parse_retry_after("Fri, 14 Mar 2025 10:27:03 +0100", NOW) == 10.0


@pytest.mark.parametrize(
    "value",
    [
        "Fri, 14 Mar 2025 09:26:52 GMT",
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "Fri, 14 Mar 2025 09:26:53 GMT",
    ],
)
def test_an_http_date_now_or_in_the_past_means_no_wait(value: str) -> None:
    assert parse_retry_after(value, NOW) == 0.0


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "soon",
        "-5",
        "1.5",
        "+3",
        "1e3",
        "0x10",
        "²",  # a digit to str.isdigit(), not to float()
        "١٢",  # Arabic-Indic digits
        "Fri, 14 Mar 2025 09:27:23",  # no zone: cannot be placed in time
        "Fri, 14 Mar 2025 09:27:23 -0000",  # "unknown zone" per RFC 5322
        "Fri, 32 Mar 2025 09:27:23 GMT",
        "Fri, 14 Foo 2025 09:27:23 GMT",
        "tomorrow at noon",
    ],
)
def test_an_absent_or_unreadable_value_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=40))
def test_any_text_is_none_or_a_non_negative_delay(value: str) -> None:
    result = parse_retry_after(value, NOW)
    assert result is None or result >= 0.0


@settings(max_examples=200, deadline=None, database=None)
@given(st.integers(min_value=0, max_value=10**12))
def test_any_non_negative_integer_is_that_many_seconds(seconds: int) -> None:
    assert parse_retry_after(str(seconds), NOW) == float(seconds)


@settings(max_examples=200, deadline=None, database=None)
@given(st.integers(min_value=-(10**8), max_value=10**8))
def test_an_http_date_is_the_whole_seconds_until_then(offset: int) -> None:
    header = format_datetime(NOW + timedelta(seconds=offset), usegmt=True)
    assert parse_retry_after(header, NOW) == max(float(offset), 0.0)
