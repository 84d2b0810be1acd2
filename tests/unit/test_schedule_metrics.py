"""The schedule counters on /metrics: a catch-up's missed times split into missed (workers
down) and paused (due while the schedule was paused)."""

from dataclasses import dataclass

from prometheus_client import REGISTRY

from application.schedules import _count


@dataclass
class CaughtUp:  # the fields of Schedule.CaughtUp that count
    missed: int
    paused: int


def _skips(reason: str) -> float:
    return REGISTRY.get_sample_value("duecall_schedule_skips_total", {"reason": reason}) or 0.0


def test_missed_times_are_counted_as_missed_or_paused() -> None:
    before = _skips("missed"), _skips("paused")
    _count([CaughtUp(missed=7, paused=5)])
    assert (_skips("missed") - before[0], _skips("paused") - before[1]) == (2, 5)
