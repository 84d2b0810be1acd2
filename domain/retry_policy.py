"""Retry policy: which failures retry, and how long to wait before the next attempt.

Pure functions: the delay for attempt n is ``initial * multiplier**(n-1)`` capped at
``max_backoff``; with full jitter it is drawn uniformly from [0, that]. A ``Retry-After``
(429/503) replaces the computed delay, still capped by ``max_backoff``.
"""

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from domain.errors import InvalidRequestError

DEFAULT_RETRY_ON = ("timeout", "network", "lost", "408", "425", "429", "5xx")
RETRY_AFTER_STATUSES = frozenset({429, 503})
MAX_DELAY_SECONDS = 365 * 24 * 3600.0  # keeps due times (datetime + timedelta) in range


class Jitter(StrEnum):
    FULL = "full"
    NONE = "none"


class ScheduleReason(StrEnum):
    BACKOFF = "backoff"
    RETRY_AFTER = "retry_after"
    CIRCUIT_OPEN = "circuit_open"
    MANUAL = "manual"
    RESUMED = "resumed"


class FailReason(StrEnum):
    NOT_RETRYABLE = "not_retryable"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    DURATION_EXHAUSTED = "duration_exhausted"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 600.0
    multiplier: float = 2.0
    jitter: Jitter = Jitter.FULL
    max_retry_duration_seconds: float | None = None
    retry_on: tuple[str, ...] = field(default=DEFAULT_RETRY_ON)

    def __post_init__(self) -> None:
        _check(self.jitter in {j.value for j in Jitter}, "jitter", "must be 'full' or 'none'")
        object.__setattr__(self, "jitter", Jitter(self.jitter))
        object.__setattr__(self, "retry_on", tuple(str(r).lower() for r in self.retry_on))
        _check(1 <= self.max_attempts <= 50, "max_attempts", "must be between 1 and 50")
        _check(self.initial_backoff_seconds >= 0, "initial_backoff_seconds", "must be >= 0")
        _check(
            self.max_backoff_seconds >= self.initial_backoff_seconds,
            "max_backoff_seconds",
            "must be >= initial_backoff_seconds",
        )
        _check(
            self.max_backoff_seconds <= MAX_DELAY_SECONDS,
            "max_backoff_seconds",
            f"must be <= {MAX_DELAY_SECONDS:.0f}",
        )
        _check(1.0 <= self.multiplier <= 10.0, "multiplier", "must be between 1 and 10")
        _check(
            self.max_retry_duration_seconds is None
            or 0 < self.max_retry_duration_seconds <= MAX_DELAY_SECONDS,
            "max_retry_duration_seconds",
            f"must be > 0 and <= {MAX_DELAY_SECONDS:.0f}",
        )
        for token in self.retry_on:
            _check(_valid_token(token), "retry_on", f"unknown outcome {token!r}")

    def as_dict(self) -> dict[str, Any]:
        # what dataclasses.asdict gave (same keys, order and values), without its deep copies
        # (once per submitted call); the fields are scalars but ``retry_on``
        values = {name: getattr(self, name) for name in _FIELD_NAMES}
        values["jitter"] = self.jitter.value
        values["retry_on"] = list(self.retry_on)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RetryPolicy":
        retry_on = tuple(values.get("retry_on", DEFAULT_RETRY_ON))
        return _policy_from_items(tuple(sorted({**values, "retry_on": retry_on}.items())))

    def retries(self, error_kind: str | None, status_code: int | None) -> bool:
        """Does an attempt that failed this way retry?"""
        if status_code is not None and error_kind in (None, "http_error"):
            return str(status_code) in self.retry_on or f"{status_code // 100}xx" in self.retry_on
        return error_kind in self.retry_on

    def backoff_seconds(self, attempt: int, random_fraction: float) -> float:
        """Delay after failed attempt ``attempt`` (1-based); ``random_fraction`` in [0, 1)."""
        ceiling = min(
            self.max_backoff_seconds,
            self.initial_backoff_seconds * self.multiplier ** min(attempt - 1, 300),
        )
        if self.jitter is Jitter.FULL:
            return ceiling * random_fraction
        return ceiling


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    reason: str
    due_at: datetime | None = None
    delay_seconds: float | None = None


def decide_retry(
    policy: RetryPolicy,
    *,
    attempt: int,
    error_kind: str | None,
    status_code: int | None,
    retry_after_seconds: float | None,
    first_attempt_due: datetime,
    now: datetime,
    random_fraction: float,
) -> RetryDecision:
    """What follows a failed attempt: the next attempt (when, and why then) or failure."""
    if not policy.retries(error_kind, status_code):
        return RetryDecision(False, FailReason.NOT_RETRYABLE)
    if attempt >= policy.max_attempts:
        return RetryDecision(False, FailReason.ATTEMPTS_EXHAUSTED)
    if retry_after_seconds is not None and status_code in RETRY_AFTER_STATUSES:
        delay = min(max(retry_after_seconds, 0.0), policy.max_backoff_seconds)
        reason = ScheduleReason.RETRY_AFTER
    else:
        delay = policy.backoff_seconds(attempt, random_fraction)
        reason = ScheduleReason.BACKOFF
    due_at = now + timedelta(seconds=delay)
    limit = policy.max_retry_duration_seconds
    if limit is not None and due_at > first_attempt_due + timedelta(seconds=limit):
        return RetryDecision(False, FailReason.DURATION_EXHAUSTED)
    return RetryDecision(True, reason, due_at, delay)


def _valid_token(token: str) -> bool:
    if token in ("timeout", "network", "lost", "rejected", "circuit_open"):
        return True
    if len(token) == 3 and token.endswith("xx") and token[0] in "12345":
        return True
    return token.isdigit() and 100 <= int(token) <= 599


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise InvalidRequestError(f"retry_policy.{name}", message)


_FIELD_NAMES = tuple(f.name for f in fields(RetryPolicy))


@lru_cache(maxsize=1024)
def _policy_from_items(items: tuple[tuple[str, Any], ...]) -> RetryPolicy:
    """Policies are few and immutable: decode (and validate) each distinct one once."""
    return RetryPolicy(**dict(items))
