"""Wall-clock times in an IANA time zone, mapped to UTC instants by an explicit DST policy.

A wall time either exists once, or not at all (a *gap*: spring forward), or twice (a *fold*:
fall back). The policy says what a schedule does with the last two:

- ``gap``: ``shift`` fires at the instant PEP 495 ``fold=0`` arithmetic gives, i.e. the wall
  time moved forward by the gap's length (02:30 in a one-hour gap fires at 03:30, as Java's
  ZonedDateTime and PostgreSQL do); ``skip`` does not fire.
- ``fold``: ``first`` fires at the first occurrence, ``last`` at the second, ``both`` at each.

``ordered_instants`` turns ascending wall times into ascending, distinct instants: a shifted
gap time or a fold's second occurrence can come after instants of later wall times, and a
shifted time can land on another fire's instant (one fire, not two).
"""

import heapq
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.errors import InvalidRequestError

MAX_ZONE_LENGTH = 64
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")
_SYSTEM_TZDATA = Path("/usr/share/zoneinfo/tzdata.zi")


class GapPolicy(StrEnum):
    SHIFT = "shift"
    SKIP = "skip"


class FoldPolicy(StrEnum):
    FIRST = "first"
    LAST = "last"
    BOTH = "both"


class DstNote(StrEnum):
    GAP_SHIFTED = "gap_shifted"  # the wall time did not exist; fired the gap's length later
    GAP_SKIPPED = "gap_skipped"  # the wall time did not exist; not fired (gap=skip)
    FOLD_FIRST = "fold_first"  # the wall time happened twice; this is the first
    FOLD_SECOND = "fold_second"  # ... and this the second


@dataclass(frozen=True)
class Instant:
    """A wall time's instant. ``at`` is UTC; ``wall`` the naive wall time that matched."""

    at: datetime
    wall: datetime
    note: DstNote | None = None

    @property
    def fires(self) -> bool:
        return self.note is not DstNote.GAP_SKIPPED


# the instants that may come after instants of later wall times (ordinary ones never do)
_HELD = {
    FoldPolicy.FIRST: frozenset({DstNote.GAP_SHIFTED, DstNote.GAP_SKIPPED}),
    FoldPolicy.LAST: frozenset({DstNote.GAP_SHIFTED, DstNote.GAP_SKIPPED}),
    FoldPolicy.BOTH: frozenset({DstNote.GAP_SHIFTED, DstNote.GAP_SKIPPED, DstNote.FOLD_SECOND}),
}


def load_zone(name: object, field: str = "spec.timezone") -> ZoneInfo:
    """The zone an IANA name names, or ``InvalidRequestError`` naming ``field``."""
    if not isinstance(name, str):
        raise InvalidRequestError(field, "must be a string")
    if len(name) > MAX_ZONE_LENGTH:
        raise InvalidRequestError(field, f"at most {MAX_ZONE_LENGTH} characters")
    if not _ZONE_NAME.fullmatch(name) or ".." in name:
        raise InvalidRequestError(field, f"{name!r} is not an IANA time zone name")
    return _zone(name, field)


@lru_cache(maxsize=1024)
def _zone(name: str, field: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidRequestError(
            field, f"unknown time zone {name!r} (an IANA name such as 'Europe/London')"
        ) from None


@lru_cache(maxsize=1)
def tzdata_version() -> str:
    """The IANA tz database release in use ("2025b"): the ``tzdata`` package's when it is
    installed (zoneinfo prefers the system's files, but they are the same data here), else
    the system's, else "unknown". Stamped on each fire, so a fire can be explained later."""
    try:
        return metadata.version("tzdata")
    except metadata.PackageNotFoundError:
        pass
    try:
        with _SYSTEM_TZDATA.open(encoding="ascii") as file:
            first = file.readline().strip()
    except (OSError, UnicodeDecodeError):
        return "unknown"
    return first.removeprefix("# version ").strip() or "unknown"


def to_utc(wall: datetime, zone: ZoneInfo, fold: int = 0) -> datetime:
    return wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def to_wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def instants(wall: datetime, zone: ZoneInfo, gap: GapPolicy, fold: FoldPolicy) -> list[Instant]:
    """The instants (0, 1 or 2; gap-skipped ones marked) at which ``wall`` fires."""
    first, second = to_utc(wall, zone, 0), to_utc(wall, zone, 1)
    if first == second:
        return [Instant(first, wall)]
    if first > second:  # a gap: fold=0 reads it with the offset before, fold=1 with the one after
        note = DstNote.GAP_SHIFTED if gap is GapPolicy.SHIFT else DstNote.GAP_SKIPPED
        return [Instant(first, wall, note)]
    if fold is FoldPolicy.FIRST:
        return [Instant(first, wall, DstNote.FOLD_FIRST)]
    if fold is FoldPolicy.LAST:
        return [Instant(second, wall, DstNote.FOLD_SECOND)]
    return [Instant(first, wall, DstNote.FOLD_FIRST), Instant(second, wall, DstNote.FOLD_SECOND)]


def ordered_instants(
    walls: Iterable[datetime], zone: ZoneInfo, gap: GapPolicy, fold: FoldPolicy
) -> Iterator[Instant]:
    """The instants of ascending ``walls``, ascending and distinct.

    Ordinary instants (and a fold's chosen occurrence) rise with their wall times; a shifted
    gap time and a fold's second occurrence are held until an ordinary instant at or after
    them shows that nothing earlier can follow. One that lands on an instant already taken is
    dropped (a fire beats a gap-skip mark; an ordinary fire beats a shifted one).
    """
    held: list[tuple[datetime, bool, int, Instant]] = []  # (at, a mark, arrival, instant)
    last: datetime | None = None
    for number, wall in enumerate(walls):
        for instant in instants(wall, zone, gap, fold):
            if instant.note in _HELD[fold]:
                heapq.heappush(held, (instant.at, not instant.fires, number, instant))
                continue
            while held and held[0][0] < instant.at:
                out = heapq.heappop(held)[3]
                if last is None or out.at > last:
                    last = out.at
                    yield out
            while held and held[0][0] == instant.at:
                heapq.heappop(held)
            if last is None or instant.at > last:
                last = instant.at
                yield instant
    while held:
        out = heapq.heappop(held)[3]
        if last is None or out.at > last:
            last = out.at
            yield out


def earliest_wall(after: datetime, zone: ZoneInfo) -> datetime:
    """A wall time before every wall time that can fire after the instant ``after``: the
    instant read with the smallest UTC offset in force within two days of it."""
    offsets = [
        (after + timedelta(days=days)).astimezone(zone).utcoffset() or timedelta(0)
        for days in (-2, -1, 0, 1, 2)
    ]
    return (after + min(offsets)).replace(tzinfo=None) - timedelta(seconds=1)
