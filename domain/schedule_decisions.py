"""What a schedule does with the nominal times that are due: pure rules, nothing recorded.

Missed fires. ``catchup_window_seconds`` is how late a fire may still be made: a nominal time
at most that late when the schedule looks is simply fired late; one later than that is
*missed* (workers down), and so is every one due while the schedule was paused, however
recent. ``on_missed`` says what becomes of those:

- ``skip``: none is made;
- ``latest``: the newest is made, once, unless a fire within the window already covers now;
- ``all``: the newest ``max_catchup`` are made, oldest first; older ones are not.

Overlap: when the previous fire's call is not terminal (retries included), ``overlap`` says
whether this one fires, is skipped, waits in a buffer, or cancels the other first.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from domain.schedule_spec import MAX_CATCHUP, OnMissed, OverlapPolicy, ScheduleSpec
from domain.schedule_times import Fire, fires_between

MAX_DUE_PER_LOOK = 500  # fires (and marks) one look plans: a bounded transaction
MAX_MISSED_PER_LOOK = 10_000  # missed times one look counts; more: it looks again at once


class OverlapAction(StrEnum):
    FIRE = "fire"
    SKIP = "skip"
    BUFFER = "buffer"
    CANCEL_PREVIOUS_THEN_FIRE = "cancel_previous_then_fire"


def decide_overlap(
    policy: OverlapPolicy, *, previous_running: bool, buffered: int
) -> OverlapAction:
    """This fire's fate, given whether an earlier fire's call is still not terminal and how
    many fires already wait in the buffer."""
    if not previous_running or policy is OverlapPolicy.ALLOW_ALL:
        return OverlapAction.FIRE
    if policy is OverlapPolicy.SKIP:
        return OverlapAction.SKIP
    if policy is OverlapPolicy.BUFFER_ONE:
        return OverlapAction.BUFFER if buffered == 0 else OverlapAction.SKIP
    if policy is OverlapPolicy.BUFFER_ALL:
        return OverlapAction.BUFFER
    return OverlapAction.CANCEL_PREVIOUS_THEN_FIRE


@dataclass(frozen=True)
class DueTimes:
    """The nominal times one look decides, each decided once.

    ``missed``: missed times not fired (all older than ``catch_up`` and ``on_time``);
    ``catch_up``: missed times fired anyway; ``on_time``: times within the window, with the
    gap-skip marks among them. ``more``: more were due than one look takes.
    """

    missed: tuple[datetime, ...]
    catch_up: tuple[Fire, ...]
    on_time: tuple[Fire, ...]
    more: bool

    @property
    def through(self) -> datetime | None:
        """The newest nominal time decided (None: nothing was due)."""
        decided = [f.nominal for f in (*self.catch_up, *self.on_time)]
        if self.missed:
            decided.append(self.missed[-1])
        return max(decided, default=None)


def due_times(
    spec: ScheduleSpec,
    *,
    after: datetime,
    now: datetime,
    until: datetime | None = None,
    paused_until: datetime | None = None,
    limit: int = MAX_DUE_PER_LOOK,
) -> DueTimes:
    """The nominal times > ``after`` (the last one decided) up to ``until`` (now, or later
    when fires are planned ahead), split by the missed-fire rules as seen at ``now``; those
    due while the schedule was paused (up to ``paused_until``) are missed however recent."""
    until = now if until is None else until
    # older than this: missed (the window), or due while paused
    late = now - timedelta(seconds=spec.catchup_window_seconds)
    if paused_until is not None:
        late = max(late, min(paused_until, until) + timedelta(microseconds=1))
    missed: list[Fire] = []
    if after < late:
        missed = fires_between(
            spec, after, late - timedelta(microseconds=1), MAX_MISSED_PER_LOOK + 1
        )
        if len(missed) > MAX_MISSED_PER_LOOK:
            # too many to judge at once: these oldest are missed whatever the policy (the
            # newest max_catchup are always left for the next look); look again at once
            oldest = missed[: MAX_MISSED_PER_LOOK - MAX_CATCHUP]
            return DueTimes(tuple(f.nominal for f in oldest), (), (), more=True)
    on_time = fires_between(
        spec, max(after, late - timedelta(microseconds=1)), until, limit + 1, include_skipped=True
    )
    more = len(on_time) > limit
    on_time = on_time[:limit]
    wanted = _catch_up_count(
        spec,
        missed_count=len(missed),
        covered=any(not f.skipped and f.nominal <= now for f in on_time),  # made by now
    )
    split = len(missed) - wanted
    return DueTimes(
        missed=tuple(f.nominal for f in missed[:split]),
        catch_up=tuple(missed[split:]),
        on_time=tuple(on_time),
        more=more,
    )


def release_times(now: datetime, count: int, rate_per_second: float) -> list[datetime]:
    """When each of ``count`` fires found due at one look may go: the first now, the others
    at most ``rate_per_second`` apart (the catch-up rate cap)."""
    gap = timedelta(seconds=1 / rate_per_second)
    return [now + gap * i for i in range(count)]


def _catch_up_count(spec: ScheduleSpec, *, missed_count: int, covered: bool) -> int:
    if missed_count == 0 or spec.on_missed is OnMissed.SKIP:
        return 0
    if spec.on_missed is OnMissed.LATEST:
        return 0 if covered else 1
    return min(missed_count, spec.max_catchup)
