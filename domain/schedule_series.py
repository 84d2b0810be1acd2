"""The instants a cron expression or an interval names in a time zone, ascending.

No schedule rules here (start, end, runs: ``domain.schedule_times``): only the series.

- Cron: iterate naive wall-clock times (calendar arithmetic, cronsim), then map each to UTC
  with the DST policy (``domain.wall_clock``).
- Interval: fixed UTC durations from an anchor instant, both ways. DST does not move an
  interval: "every 15 minutes" is 900 s of real time even across a clock change, so the
  local times it fires at keep their phase only when the interval divides the change (use
  cron for wall-clock times such as "09:00 every day").
"""

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain.cron import CronExpression
from domain.wall_clock import (
    FoldPolicy,
    GapPolicy,
    Instant,
    earliest_wall,
    ordered_instants,
    to_utc,
    to_wall,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PHASE_DATE = datetime(2000, 1, 1)  # the local day a "starting HH:MM" phase is read on, by default
LATEST = datetime(2300, 1, 1, tzinfo=UTC)  # no search goes further


def cron_series(
    expression: CronExpression,
    zone: ZoneInfo,
    gap: GapPolicy,
    fold: FoldPolicy,
    after: datetime,
    until: datetime,
) -> Iterator[Instant]:
    """The instants (gap-skip marks included) > ``after`` and <= ``until`` (UTC)."""
    until = min(until, LATEST)
    if until <= after:
        return
    first_wall = earliest_wall(after, zone)
    last_wall = to_wall(until, zone) + timedelta(days=2)  # past any wall that maps to <= until
    walls = expression.walls(first_wall, min(last_wall, expression.horizon(first_wall)))
    for instant in ordered_instants(walls, zone, gap, fold):
        if instant.at <= after:
            continue
        if instant.at > until:
            return
        yield instant


def interval_series(
    anchor: datetime, step: timedelta, zone: ZoneInfo, after: datetime, until: datetime
) -> Iterator[Instant]:
    """``anchor + k * step`` for every integer k, > ``after`` and <= ``until``."""
    until = min(until, LATEST)
    at = anchor + ((after - anchor) // step + 1) * step
    while at <= until:
        yield Instant(at, to_wall(at, zone))
        at += step


def interval_anchor(
    zone: ZoneInfo, starting: time | None, anchor: datetime | None, start_at: datetime | None
) -> datetime:
    """Where an interval's steps are counted from: ``anchor``; else the ``starting`` wall time
    on ``start_at``'s local day (or on 2000-01-01); else ``start_at``; else the Unix epoch."""
    if anchor is not None:
        return anchor.astimezone(UTC)
    if starting is not None:
        day = to_wall(start_at, zone) if start_at is not None else PHASE_DATE
        return to_utc(datetime.combine(day.date(), starting), zone)
    if start_at is not None:
        return start_at.astimezone(UTC)
    return EPOCH
