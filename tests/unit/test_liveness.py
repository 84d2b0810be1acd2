"""Liveness (application/dispatch/liveness.py) with a registry in memory: a worker beats every
round, and reaps only once it has been beating for ``dead_after`` without a miss, so that after
a database outage it does not take the other workers for dead before they could beat again."""

from uuid import uuid4

import pytest

from application.dispatch.liveness import Liveness, LiveWorker, Reaped

DEAD_AFTER = 3.0


class Registry:
    def __init__(self) -> None:
        self.worker_id = uuid4()
        self.beats: list[int] = []
        self.reaps = 0
        self.down = False

    def beat(self, in_flight: int) -> None:
        if self.down:
            raise ConnectionError("the database is away")
        self.beats.append(in_flight)

    def reap(self, dead_after: float) -> Reaped:
        assert dead_after == DEAD_AFTER
        self.reaps += 1
        return Reaped(workers=1, messages=2)

    def leave(self) -> Reaped:
        return Reaped(workers=1, messages=0)

    def live(self) -> list[LiveWorker]:
        return []


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _liveness(registry: Registry, clock: Clock) -> Liveness:
    return Liveness(registry, lambda: 7, interval=0.0, dead_after=DEAD_AFTER, clock=clock)


def test_it_beats_every_round_and_reaps_once_beating_for_dead_after() -> None:
    registry, clock = Registry(), Clock()
    liveness = _liveness(registry, clock)

    freed = []
    for _ in range(5):  # t = 100 .. 104
        freed.append(liveness.run_once())
        clock.now += 1.0

    assert registry.beats == [7] * 5
    assert freed == [0, 0, 0, 2, 2]  # from t = 103: beating for 3 s


def test_after_a_missed_beat_it_waits_dead_after_again_before_reaping() -> None:
    registry, clock = Registry(), Clock()
    liveness = _liveness(registry, clock)
    for _ in range(4):
        liveness.run_once()
        clock.now += 1.0
    assert registry.reaps == 1

    registry.down = True  # the database away for 5 s: every worker's beats stop
    with pytest.raises(ConnectionError):
        liveness.run_once()
    clock.now += 5.0
    registry.down = False
    reaps_before = registry.reaps
    for _ in range(3):  # back: the others need a moment to beat too
        liveness.run_once()
        clock.now += 1.0
    assert registry.reaps == reaps_before
    liveness.run_once()
    assert registry.reaps == reaps_before + 1


def test_a_round_much_later_than_the_last_counts_as_a_miss() -> None:
    registry, clock = Registry(), Clock()
    liveness = _liveness(registry, clock)
    for _ in range(4):
        liveness.run_once()
        clock.now += 1.0
    reaps_before = registry.reaps
    clock.now += 10.0  # the process stalled: silent to the others meanwhile

    liveness.run_once()

    assert registry.reaps == reaps_before
