"""RetryPolicy: validation, what retries, the backoff function and decide_retry."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from domain.errors import InvalidRequestError
from domain.retry_policy import (
    DEFAULT_RETRY_ON,
    MAX_DELAY_SECONDS,
    FailReason,
    Jitter,
    RetryPolicy,
    ScheduleReason,
    decide_retry,
)

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)

# --- defaults and validation -------------------------------------------------------------


def test_defaults_follow_the_issue() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 5
    assert policy.initial_backoff_seconds == 1.0
    assert policy.max_backoff_seconds == 600.0
    assert policy.multiplier == 2.0
    assert policy.jitter is Jitter.FULL
    assert policy.max_retry_duration_seconds is None
    assert set(policy.retry_on) >= {"timeout", "network", "408", "425", "429", "5xx"}
    assert policy.retry_on == DEFAULT_RETRY_ON


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("max_attempts", {"max_attempts": 0}),
        ("max_attempts", {"max_attempts": -1}),
        ("max_attempts", {"max_attempts": 51}),
        ("initial_backoff_seconds", {"initial_backoff_seconds": -0.001}),
        ("initial_backoff_seconds", {"initial_backoff_seconds": math.nan}),
        ("max_backoff_seconds", {"initial_backoff_seconds": 10.0, "max_backoff_seconds": 9.0}),
        ("max_backoff_seconds", {"max_backoff_seconds": math.nan}),
        ("max_backoff_seconds", {"max_backoff_seconds": math.inf}),
        ("max_backoff_seconds", {"max_backoff_seconds": MAX_DELAY_SECONDS + 1}),
        ("multiplier", {"multiplier": 0.99}),
        ("multiplier", {"multiplier": 10.01}),
        ("multiplier", {"multiplier": math.nan}),
        ("jitter", {"jitter": "random"}),
        ("max_retry_duration_seconds", {"max_retry_duration_seconds": 0}),
        ("max_retry_duration_seconds", {"max_retry_duration_seconds": -5}),
        ("max_retry_duration_seconds", {"max_retry_duration_seconds": math.nan}),
        ("max_retry_duration_seconds", {"max_retry_duration_seconds": math.inf}),
        ("max_retry_duration_seconds", {"max_retry_duration_seconds": MAX_DELAY_SECONDS * 2}),
        ("retry_on", {"retry_on": ("timeout", "sometimes")}),
        ("retry_on", {"retry_on": ("600",)}),
        ("retry_on", {"retry_on": ("99",)}),
        ("retry_on", {"retry_on": ("6xx",)}),
        ("retry_on", {"retry_on": ("5XXX",)}),
        ("retry_on", {"retry_on": ("",)}),
    ],
)
def test_an_invalid_field_is_rejected_and_named(field: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        RetryPolicy(**kwargs)
    assert raised.value.field == f"retry_policy.{field}"
    assert raised.value.message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 1},
        {"max_attempts": 50},
        {"initial_backoff_seconds": 0.0, "max_backoff_seconds": 0.0},
        {"initial_backoff_seconds": 5.0, "max_backoff_seconds": 5.0},
        {"max_backoff_seconds": MAX_DELAY_SECONDS},
        {"multiplier": 1.0},
        {"multiplier": 10.0},
        {"jitter": "none"},
        {"jitter": "full"},
        {"max_retry_duration_seconds": 0.5},
        {"max_retry_duration_seconds": MAX_DELAY_SECONDS},
        {"retry_on": ()},
        {"retry_on": ("1xx", "2xx", "3xx", "4xx", "5xx", "100", "599")},
        {"retry_on": ("lost", "rejected", "circuit_open")},
    ],
)
def test_boundary_values_are_accepted(kwargs: dict[str, Any]) -> None:
    RetryPolicy(**kwargs)


def test_jitter_and_retry_on_are_normalised() -> None:
    policy = RetryPolicy(jitter="none", retry_on=["TIMEOUT", "5XX", 503])  # type: ignore[arg-type]
    assert policy.jitter is Jitter.NONE
    assert policy.retry_on == ("timeout", "5xx", "503")


def test_as_dict_and_from_dict_round_trip() -> None:
    policy = RetryPolicy(
        max_attempts=7,
        initial_backoff_seconds=0.5,
        max_backoff_seconds=30,
        multiplier=3,
        jitter=Jitter.NONE,
        max_retry_duration_seconds=120,
        retry_on=("timeout", "503"),
    )
    values = policy.as_dict()
    assert values["jitter"] == "none"
    assert values["retry_on"] == ["timeout", "503"]
    assert RetryPolicy.from_dict(values) == policy
    assert RetryPolicy.from_dict({}) == RetryPolicy()


# --- what retries ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error_kind", "status_code"),
    [
        ("timeout", None),
        ("network", None),
        ("http_error", 408),
        ("http_error", 425),
        ("http_error", 429),
        ("http_error", 500),
        ("http_error", 502),
        ("http_error", 503),
        ("http_error", 504),
        ("http_error", 599),
        (None, 503),
    ],
)
def test_the_default_policy_retries(error_kind: str | None, status_code: int | None) -> None:
    assert RetryPolicy().retries(error_kind, status_code)


@pytest.mark.parametrize(
    ("error_kind", "status_code"),
    [
        ("http_error", 400),
        ("http_error", 401),
        ("http_error", 403),
        ("http_error", 404),
        ("http_error", 409),
        ("http_error", 422),
        ("http_error", 301),
        ("rejected", None),
        ("circuit_open", None),
        ("http_error", None),
    ],
)
def test_the_default_policy_does_not_retry(error_kind: str | None, status_code: int | None) -> None:
    assert not RetryPolicy().retries(error_kind, status_code)


def test_an_error_kind_decides_even_when_a_status_code_is_present() -> None:
    assert RetryPolicy().retries("timeout", 404)
    assert not RetryPolicy(retry_on=("404",)).retries("timeout", 404)


def test_a_single_status_token_retries_only_that_status() -> None:
    policy = RetryPolicy(retry_on=("503",))
    assert policy.retries("http_error", 503)
    assert not policy.retries("http_error", 500)
    assert not policy.retries("http_error", 429)
    assert not policy.retries("timeout", None)


def test_a_class_token_retries_the_whole_class() -> None:
    policy = RetryPolicy(retry_on=("4xx",))
    assert all(policy.retries("http_error", code) for code in (400, 404, 422, 429, 499))
    assert not policy.retries("http_error", 500)
    assert not policy.retries("network", None)


def test_an_empty_retry_on_never_retries() -> None:
    policy = RetryPolicy(retry_on=())
    assert not policy.retries("timeout", None)
    assert not policy.retries("http_error", 503)


# --- backoff -----------------------------------------------------------------------------


def test_backoff_without_jitter_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_backoff_seconds=1, max_backoff_seconds=10, jitter=Jitter.NONE)
    assert [policy.backoff_seconds(n, 0.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_full_jitter_scales_the_ceiling_by_the_random_fraction() -> None:
    policy = RetryPolicy(initial_backoff_seconds=4, multiplier=2)
    assert policy.backoff_seconds(2, 0.0) == 0.0
    assert policy.backoff_seconds(2, 0.25) == 2.0
    assert policy.backoff_seconds(2, 0.999) == pytest.approx(7.992)


policies = st.builds(
    lambda initial, extra, multiplier, jitter: RetryPolicy(
        initial_backoff_seconds=initial,
        max_backoff_seconds=initial + extra,
        multiplier=multiplier,
        jitter=jitter,
    ),
    initial=st.floats(min_value=0, max_value=3600, allow_nan=False),
    extra=st.floats(min_value=0, max_value=MAX_DELAY_SECONDS - 3600, allow_nan=False),
    multiplier=st.floats(min_value=1.0, max_value=10.0, allow_nan=False),
    jitter=st.sampled_from(Jitter),
)
attempt_numbers = st.integers(min_value=1, max_value=10_000)
fractions = st.floats(min_value=0.0, max_value=1.0, exclude_max=True, allow_nan=False)


def _ceiling(policy: RetryPolicy, attempt: int) -> float:
    return RetryPolicy(**{**policy.as_dict(), "jitter": "none"}).backoff_seconds(attempt, 0.0)


@settings(max_examples=300, deadline=None, database=None)
@given(policy=policies, attempt=attempt_numbers, fraction=fractions)
def test_backoff_is_never_negative_nor_beyond_max_backoff(
    policy: RetryPolicy, attempt: int, fraction: float
) -> None:
    delay = policy.backoff_seconds(attempt, fraction)
    assert 0.0 <= delay <= policy.max_backoff_seconds


@settings(max_examples=300, deadline=None, database=None)
@given(policy=policies, attempt=attempt_numbers, steps=st.integers(min_value=1, max_value=60))
def test_backoff_without_jitter_is_monotone_up_to_the_cap(
    policy: RetryPolicy, attempt: int, steps: int
) -> None:
    policy = RetryPolicy(**{**policy.as_dict(), "jitter": "none"})
    earlier = policy.backoff_seconds(attempt, 0.5)
    later = policy.backoff_seconds(attempt + steps, 0.5)
    assert earlier <= later <= policy.max_backoff_seconds


@settings(max_examples=300, deadline=None, database=None)
@given(policy=policies, attempt=st.integers(min_value=1, max_value=50))
def test_backoff_without_jitter_is_the_exponential_capped_at_max_backoff(
    policy: RetryPolicy, attempt: int
) -> None:
    policy = RetryPolicy(**{**policy.as_dict(), "jitter": "none"})
    exponential = policy.initial_backoff_seconds * policy.multiplier ** (attempt - 1)
    assert policy.backoff_seconds(attempt, 0.0) == min(policy.max_backoff_seconds, exponential)
    assert policy.backoff_seconds(1, 0.0) == policy.initial_backoff_seconds


@settings(max_examples=300, deadline=None, database=None)
@given(policy=policies, attempt=attempt_numbers, fraction=fractions)
def test_full_jitter_stays_within_zero_and_the_ceiling(
    policy: RetryPolicy, attempt: int, fraction: float
) -> None:
    policy = RetryPolicy(**{**policy.as_dict(), "jitter": "full"})
    ceiling = _ceiling(policy, attempt)
    delay = policy.backoff_seconds(attempt, fraction)
    assert 0.0 <= delay <= ceiling
    assert delay == ceiling * fraction


@settings(max_examples=200, deadline=None, database=None)
@given(policy=policies, attempt=attempt_numbers, low=fractions, high=fractions)
def test_full_jitter_is_monotone_in_the_random_fraction(
    policy: RetryPolicy, attempt: int, low: float, high: float
) -> None:
    assume(low <= high)
    policy = RetryPolicy(**{**policy.as_dict(), "jitter": "full"})
    assert policy.backoff_seconds(attempt, low) <= policy.backoff_seconds(attempt, high)


# --- decide_retry ------------------------------------------------------------------------


def _decide(policy: RetryPolicy, **overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "attempt": 1,
        "error_kind": "http_error",
        "status_code": 503,
        "retry_after_seconds": None,
        "first_attempt_due": NOW,
        "now": NOW,
        "random_fraction": 0.5,
    }
    arguments.update(overrides)
    return decide_retry(policy, **arguments)


def test_decide_retry_schedules_a_backoff_with_its_delay() -> None:
    decision = _decide(RetryPolicy(jitter=Jitter.NONE), attempt=3)
    assert decision.retry
    assert decision.reason == ScheduleReason.BACKOFF
    assert decision.delay_seconds == 4.0
    assert decision.due_at == NOW + timedelta(seconds=4)


def test_decide_retry_fails_a_non_retryable_outcome_even_with_attempts_left() -> None:
    decision = _decide(RetryPolicy(), status_code=404)
    assert not decision.retry
    assert decision.reason == FailReason.NOT_RETRYABLE
    assert decision.due_at is None


def test_not_retryable_wins_over_attempts_exhausted() -> None:
    decision = _decide(RetryPolicy(max_attempts=1), status_code=404)
    assert decision.reason == FailReason.NOT_RETRYABLE


def test_decide_retry_honours_retry_after_capped_by_max_backoff() -> None:
    policy = RetryPolicy(max_backoff_seconds=30)
    decision = _decide(policy, status_code=429, retry_after_seconds=12.5)
    assert (decision.reason, decision.delay_seconds) == (ScheduleReason.RETRY_AFTER, 12.5)
    decision = _decide(policy, status_code=503, retry_after_seconds=3600)
    assert (decision.reason, decision.delay_seconds) == (ScheduleReason.RETRY_AFTER, 30)
    decision = _decide(policy, status_code=503, retry_after_seconds=-5)
    assert (decision.reason, decision.delay_seconds) == (ScheduleReason.RETRY_AFTER, 0.0)
    decision = _decide(policy, status_code=503, retry_after_seconds=math.inf)
    assert (decision.reason, decision.delay_seconds) == (ScheduleReason.RETRY_AFTER, 30)


statuses = st.one_of(st.none(), st.integers(min_value=100, max_value=599))
kinds = st.sampled_from([None, "http_error", "timeout", "network", "lost", "rejected"])
retry_afters = st.one_of(st.none(), st.floats(min_value=-10, max_value=1e7), st.just(math.inf))


@settings(max_examples=400, deadline=None, database=None)
@given(
    policy=policies,
    max_attempts=st.integers(min_value=1, max_value=50),
    duration=st.one_of(st.none(), st.floats(min_value=0.001, max_value=MAX_DELAY_SECONDS)),
    attempt=st.integers(min_value=1, max_value=60),
    error_kind=kinds,
    status_code=statuses,
    retry_after=retry_afters,
    elapsed=st.floats(min_value=0, max_value=MAX_DELAY_SECONDS),
    fraction=fractions,
)
def test_decide_retry_never_goes_beyond_the_policy(
    policy: RetryPolicy,
    max_attempts: int,
    duration: float | None,
    attempt: int,
    error_kind: str | None,
    status_code: int | None,
    retry_after: float | None,
    elapsed: float,
    fraction: float,
) -> None:
    policy = RetryPolicy(
        **{**policy.as_dict(), "max_attempts": max_attempts, "max_retry_duration_seconds": duration}
    )
    now = NOW + timedelta(seconds=elapsed)
    decision = _decide(
        policy,
        attempt=attempt,
        error_kind=error_kind,
        status_code=status_code,
        retry_after_seconds=retry_after,
        now=now,
        random_fraction=fraction,
    )
    if not policy.retries(error_kind, status_code):
        assert not decision.retry
        assert decision.reason == FailReason.NOT_RETRYABLE
        return
    if attempt >= max_attempts:
        assert not decision.retry
        assert decision.reason == FailReason.ATTEMPTS_EXHAUSTED
        return
    if not decision.retry:
        assert decision.reason == FailReason.DURATION_EXHAUSTED
        assert duration is not None
        return
    assert decision.due_at is not None
    assert decision.delay_seconds is not None
    assert 0.0 <= decision.delay_seconds <= policy.max_backoff_seconds
    assert decision.due_at == now + timedelta(seconds=decision.delay_seconds)
    if duration is not None:
        assert decision.due_at <= NOW + timedelta(seconds=duration)
    if retry_after is not None and status_code in (429, 503):
        assert decision.reason == ScheduleReason.RETRY_AFTER
        assert decision.delay_seconds == min(max(retry_after, 0.0), policy.max_backoff_seconds)
    else:
        assert decision.reason == ScheduleReason.BACKOFF
        assert decision.delay_seconds == policy.backoff_seconds(attempt, fraction)


@settings(max_examples=200, deadline=None, database=None)
@given(max_attempts=st.integers(min_value=1, max_value=50), fraction=fractions)
def test_a_chain_of_failures_retries_exactly_max_attempts_minus_one_times(
    max_attempts: int, fraction: float
) -> None:
    policy = RetryPolicy(max_attempts=max_attempts)
    retried = 0
    attempt = 1
    while True:
        decision = _decide(policy, attempt=attempt, random_fraction=fraction)
        if not decision.retry:
            assert decision.reason == FailReason.ATTEMPTS_EXHAUSTED
            break
        retried += 1
        attempt += 1
    assert retried == max_attempts - 1
    assert attempt == max_attempts


@pytest.mark.parametrize(
    "policy",
    [
        RetryPolicy(),
        RetryPolicy(max_attempts=3, initial_backoff_seconds=1, multiplier=3, jitter=Jitter.NONE,
                    max_retry_duration_seconds=60, retry_on=("5XX", "timeout")),
    ],
)
def test_as_dict_is_what_dataclasses_asdict_gave(policy: RetryPolicy) -> None:
    """``as_dict`` goes into the ``Submitted`` event: its keys, order and values (an int stays
    an int) must not change with how it is built."""
    expected = asdict(policy)
    expected["jitter"] = policy.jitter.value
    expected["retry_on"] = list(policy.retry_on)
    assert json.dumps(policy.as_dict()) == json.dumps(expected)
    assert policy.as_dict() is not policy.as_dict()  # a fresh dict each time
