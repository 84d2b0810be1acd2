"""When a schedule fires: its nominal times, their jitter, and each fire's idempotency key.

Pure functions of a ``ScheduleSpec``. A nominal time is a UTC instant; ``start_at`` and
``end_at`` bound it (both inclusive) and ``max_runs`` counts the fires already made.
"""

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from domain.errors import InvalidRequestError
from domain.schedule_series import LATEST
from domain.schedule_spec import ScheduleSpec
from domain.wall_clock import DstNote, Instant

MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Fire:
    """One nominal time. ``local`` is the wall-clock time the spec matched (for a shifted gap
    time, one the clock never showed: the clock read ``nominal`` in the zone instead)."""

    nominal: datetime
    local: datetime
    dst_note: DstNote | None = None

    @property
    def skipped(self) -> bool:
        """A gap-skip mark (gap=skip): a wall time that did not exist, so no fire."""
        return self.dst_note is DstNote.GAP_SKIPPED


def next_fires(
    spec: ScheduleSpec,
    after: datetime,
    count: int,
    *,
    runs_done: int = 0,
    include_skipped: bool = False,
) -> list[Fire]:
    """The next ``count`` nominal times after ``after`` (exclusive), ascending; fewer when the
    spec ends first (end_at, max_runs less ``runs_done``, its last cron year). With
    ``include_skipped``, gap-skip marks come too (not counted as runs)."""
    runs_left = _runs_left(spec, runs_done)
    fires: list[Fire] = []
    for instant in spec.series(_not_before_start(spec, after), spec.end_at or LATEST):
        if len(fires) >= count:
            break
        if instant.fires:
            if runs_left <= 0:
                break
            runs_left -= 1
        elif not include_skipped:
            continue
        fires.append(_fire(instant))
    return fires


def fires_between(
    spec: ScheduleSpec,
    after: datetime,
    until: datetime,
    limit: int,
    *,
    include_skipped: bool = False,
) -> list[Fire]:
    """The nominal times > ``after`` and <= ``until`` within start_at/end_at, ascending, at
    most ``limit`` of them (``max_runs`` is the caller's: it knows the runs made)."""
    if spec.end_at is not None:
        until = min(until, spec.end_at)
    fires: list[Fire] = []
    for instant in spec.series(_not_before_start(spec, after), until):
        if len(fires) >= limit:
            break
        if instant.fires or include_skipped:
            fires.append(_fire(instant))
    return fires


def first_fire(spec: ScheduleSpec, after: datetime, *, runs_done: int = 0) -> Fire | None:
    fires = next_fires(spec, after, 1, runs_done=runs_done)
    return fires[0] if fires else None


def check_fires_after(spec: ScheduleSpec, now: datetime, *, runs_done: int = 0) -> None:
    """A schedule made or changed at ``now`` must fire again: an error naming why not."""
    if first_fire(spec, now, runs_done=runs_done) is not None:
        return
    if spec.end_at is not None and spec.end_at <= now:
        raise InvalidRequestError("spec.end_at", "has passed: the schedule would never fire")
    if spec.max_runs is not None and runs_done >= spec.max_runs:
        raise InvalidRequestError("spec.max_runs", f"{runs_done} runs were made already")
    field = "spec.end_at" if spec.end_at is not None else "spec.cron"
    raise InvalidRequestError(field, "the schedule would never fire after now")


def jitter_offset(schedule_id: UUID | str, nominal: datetime, jitter_seconds: float) -> timedelta:
    """A fire's delay in [0, jitter): a hash of the schedule and the nominal time, so that every
    replay, worker and restart computes the same one (and fires spread out)."""
    if jitter_seconds <= 0:
        return timedelta(0)
    digest = hashlib.blake2b(f"{schedule_id}|{utc_text(nominal)}".encode(), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    return timedelta(microseconds=int(fraction * jitter_seconds * 1_000_000))


def fire_idempotency_key(schedule_id: UUID | str, nominal: datetime) -> str:
    """``sched:<schedule id>:<nominal UTC time>``: one call per nominal time, whoever fires it."""
    return f"sched:{schedule_id}:{utc_text(nominal)}"


def trigger_idempotency_key(schedule_id: UUID | str, trigger_id: UUID | str) -> str:
    """A manual fire's key: its own id, never a nominal time's."""
    return f"sched:{schedule_id}:trigger:{trigger_id}"


def utc_text(instant: datetime) -> str:
    """``2026-03-08T07:30:00Z`` (microseconds only when there are some)."""
    utc = instant.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def _runs_left(spec: ScheduleSpec, runs_done: int) -> int:
    return 2**62 if spec.max_runs is None else spec.max_runs - runs_done


def _not_before_start(spec: ScheduleSpec, after: datetime) -> datetime:
    if spec.start_at is None:
        return after
    return max(after, spec.start_at - MICROSECOND)


def _fire(instant: Instant) -> Fire:
    return Fire(nominal=instant.at, local=instant.wall, dst_note=instant.note)
