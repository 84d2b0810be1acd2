"""A schedule's spec: when it fires, and what it does about DST, missed fires and overlap.

A validated value object; every error names its field (``spec.cron``, ``spec.timezone``, ...).
``to_dict()`` gives JSON values for event payloads; ``from_dict()`` reads API input (and
checks it); ``restored()`` reads a recorded payload (checked when it was recorded).
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from domain.cron import CronExpression, parse_cron
from domain.errors import InvalidRequestError
from domain.schedule_series import EPOCH, cron_series, interval_anchor, interval_series
from domain.wall_clock import FoldPolicy, GapPolicy, Instant, load_zone

MAX_INTERVAL_SECONDS = 366 * 24 * 3600
MAX_WINDOW_SECONDS = 366 * 24 * 3600
MAX_RUNS = 1_000_000_000
MAX_CATCHUP = 1000
MAX_RATE_PER_SECOND = 1000.0
MAX_JITTER_SECONDS = 3600.0
MAX_PAUSE_AFTER_FAILURES = 1000
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2199, 12, 31, tzinfo=UTC)
_STARTING = re.compile(r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")


class OnMissed(StrEnum):
    SKIP = "skip"  # a fire later than the catch-up window is not made
    LATEST = "latest"  # ... unless it is the newest due and nothing on time covers it: once
    ALL = "all"  # ... made anyway: the newest max_catchup of them, rate-capped


class OverlapPolicy(StrEnum):
    SKIP = "skip"  # the previous fire's call is not terminal: skip this one
    BUFFER_ONE = "buffer_one"  # ... hold this one (one at most) until it is
    BUFFER_ALL = "buffer_all"  # ... hold every one, fire them in turn
    CANCEL_OTHER = "cancel_other"  # ... cancel it, then fire
    ALLOW_ALL = "allow_all"  # fire regardless (Cloud Scheduler, QStash)


@dataclass(frozen=True)
class ScheduleSpec:
    cron: str | None = None
    interval_seconds: int | None = None
    starting: str | None = None  # an interval's phase: a local time of day, "HH:MM[:SS]"
    anchor: datetime | None = None  # ... or an instant one of its fires falls on
    timezone: str = "UTC"
    start_at: datetime | None = None  # no fire before (inclusive)
    end_at: datetime | None = None  # no fire after (inclusive)
    max_runs: int | None = None
    gap: GapPolicy = GapPolicy.SHIFT
    fold: FoldPolicy = FoldPolicy.FIRST
    catchup_window_seconds: int = 60  # a fire at most this late is made; later, it is missed
    on_missed: OnMissed = OnMissed.LATEST
    max_catchup: int = 100
    catchup_rate_per_second: float = 10.0  # several fires due at one look: at most this fast
    overlap: OverlapPolicy = OverlapPolicy.ALLOW_ALL
    jitter_seconds: float = 0.0  # each fire's call is due up to this much after its time
    pause_after_failures: int | None = None  # pause after this many failed fires in a row

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval_seconds is None):
            raise InvalidRequestError("spec.cron", "give exactly one of cron and interval_seconds")
        if self.cron is not None:
            parse_cron(self.cron)
            for name in ("starting", "anchor"):
                if getattr(self, name) is not None:
                    raise InvalidRequestError(f"spec.{name}", "only with interval_seconds")
        else:
            _integer(self, "interval_seconds", 1, MAX_INTERVAL_SECONDS)
            if self.starting is not None and self.anchor is not None:
                raise InvalidRequestError("spec.anchor", "give starting or anchor, not both")
            if self.starting is not None:
                _starting_time(self.starting)
        load_zone(self.timezone)
        for name in ("anchor", "start_at", "end_at"):
            _instant(self, name)
        for name, enum in (
            ("gap", GapPolicy),
            ("fold", FoldPolicy),
            ("on_missed", OnMissed),
            ("overlap", OverlapPolicy),
        ):
            _choice(self, name, enum)
        _integer(self, "max_runs", 1, MAX_RUNS, optional=True)
        _integer(self, "catchup_window_seconds", 1, MAX_WINDOW_SECONDS)
        _integer(self, "max_catchup", 1, MAX_CATCHUP)
        _number(self, "catchup_rate_per_second", 0.0, MAX_RATE_PER_SECOND, open_low=True)
        _number(self, "jitter_seconds", 0.0, MAX_JITTER_SECONDS)
        _integer(self, "pause_after_failures", 1, MAX_PAUSE_AFTER_FAILURES, optional=True)
        if self.start_at is not None and self.end_at is not None and self.end_at <= self.start_at:
            raise InvalidRequestError("spec.end_at", "must be after start_at")
        _check_fires(self)

    @cached_property
    def zone(self) -> ZoneInfo:
        return load_zone(self.timezone)

    @cached_property
    def expression(self) -> CronExpression | None:
        return None if self.cron is None else parse_cron(self.cron)

    @cached_property
    def step(self) -> timedelta | None:
        return None if self.interval_seconds is None else timedelta(seconds=self.interval_seconds)

    @cached_property
    def anchor_instant(self) -> datetime:
        """An interval's phase: the instant its steps are counted from."""
        starting = None if self.starting is None else _starting_time(self.starting)
        return interval_anchor(self.zone, starting, self.anchor, self.start_at)

    def series(self, after: datetime, until: datetime) -> Iterator[Instant]:
        """The cron's or interval's instants > ``after``, <= ``until`` (no start, end, runs)."""
        if self.expression is not None:
            return cron_series(self.expression, self.zone, self.gap, self.fold, after, until)
        assert self.step is not None
        return interval_series(self.anchor_instant, self.step, self.zone, after, until)

    def to_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            values[name] = value.isoformat() if isinstance(value, datetime) else value
        for name in ("gap", "fold", "on_missed", "overlap"):
            values[name] = str(values[name])
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ScheduleSpec":
        """A spec from input (checked): unknown keys and wrong types name their field."""
        if not isinstance(values, dict):
            raise InvalidRequestError("spec", "must be an object")
        for name in values:
            if name not in _FIELD_NAMES:
                raise InvalidRequestError(f"spec.{name}", "unknown field")
        return cls(**{name: _read(name, value) for name, value in values.items()})

    @classmethod
    def restored(cls, values: dict[str, Any]) -> "ScheduleSpec":
        """A spec rebuilt from a recorded payload, which was checked when it was recorded."""
        spec = object.__new__(cls)
        for f in fields(cls):
            value = values.get(f.name, f.default)
            if f.name in _DATETIMES and isinstance(value, str):
                value = datetime.fromisoformat(value)
            elif f.name in _ENUMS and value is not None:
                value = _ENUMS[f.name](value)
            object.__setattr__(spec, f.name, value)
        return spec


def _check_fires(spec: ScheduleSpec) -> None:
    """A spec that never fires is an error naming the field at fault."""
    horizon = timedelta(days=366 * 30)
    expression = spec.expression
    if expression is not None:
        first_year = min(expression.years) if expression.years else 2000
        since = datetime(first_year, 1, 1, tzinfo=UTC) - timedelta(days=2)
        if not any(i.fires for i in spec.series(since, since + horizon + timedelta(days=4))):
            raise InvalidRequestError(
                "spec.cron",
                "never fires (no matching time exists, or each falls in a DST gap "
                "that gap=skip skips)",
            )
    if spec.start_at is None and spec.end_at is None:
        return
    after = (spec.start_at or (spec.end_at or EPOCH) - horizon) - timedelta(microseconds=1)
    until = spec.end_at or after + horizon
    if not any(i.fires for i in spec.series(after, until)):
        field = "spec.end_at" if spec.end_at is not None else "spec.start_at"
        raise InvalidRequestError(field, "would never fire between start_at and end_at")


def _read(name: str, value: Any) -> Any:
    """An input value in the field's type (a datetime from an ISO string, an int from 60.0)."""
    if name in _DATETIMES and isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRequestError(f"spec.{name}", "must be an RFC 3339 date-time") from None
    if name in _INTEGERS and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _starting_time(text: object) -> time:
    found = _STARTING.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        raise InvalidRequestError("spec.starting", "must be a local time of day, HH:MM or HH:MM:SS")
    hours, minutes, seconds = found.groups()
    return time(int(hours), int(minutes), int(seconds or 0))


def _instant(spec: ScheduleSpec, name: str) -> None:
    value = getattr(spec, name)
    if value is None:
        return
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidRequestError(f"spec.{name}", "must be a date-time with a UTC offset")
    if not EARLIEST <= value <= LATEST:
        raise InvalidRequestError(f"spec.{name}", "must be between 1970 and 2199")
    object.__setattr__(spec, name, value.astimezone(UTC))


def _choice(spec: ScheduleSpec, name: str, enum: type[StrEnum]) -> None:
    value = getattr(spec, name)
    choices = [member.value for member in enum]
    if not isinstance(value, str) or value not in choices:
        raise InvalidRequestError(f"spec.{name}", f"must be one of {choices}")
    object.__setattr__(spec, name, enum(value))


def _integer(spec: ScheduleSpec, name: str, low: int, high: int, optional: bool = False) -> None:
    value = getattr(spec, name)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequestError(f"spec.{name}", f"must be a whole number from {low} to {high}")


def _number(spec: ScheduleSpec, name: str, low: float, high: float, open_low: bool = False) -> None:
    value = getattr(spec, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(f"spec.{name}", "must be a number")
    if not (low < value if open_low else low <= value) or not value <= high:
        bound = f"more than {low:g}" if open_low else f"at least {low:g}"
        raise InvalidRequestError(f"spec.{name}", f"must be {bound} and at most {high:g}")
    object.__setattr__(spec, name, float(value))


_FIELD_NAMES = tuple(f.name for f in fields(ScheduleSpec))
_DATETIMES = frozenset({"anchor", "start_at", "end_at"})
_INTEGERS = frozenset(
    {
        "interval_seconds",
        "max_runs",
        "catchup_window_seconds",
        "max_catchup",
        "pause_after_failures",
    }
)
_ENUMS: dict[str, type[StrEnum]] = {
    "gap": GapPolicy,
    "fold": FoldPolicy,
    "on_missed": OnMissed,
    "overlap": OverlapPolicy,
}
