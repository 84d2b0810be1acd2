"""The follower's catch-up keeps every model folding until all have reached the head of the
log: a model with little to fold, at the head early, still folds what arrives while another is
catching up (stopping there, it lagged most in a burst)."""

import threading
from collections.abc import Mapping
from typing import Any, cast

import pytest

from projections.follower import Follower
from projections.runner import ProjectionRunner
from projections.shared_log import SharedLog


class Runner:
    """Reads what ``reads`` says, then 0 (the head); ``fail``: raises instead of its last."""

    def __init__(self, name: str, reads: list[int], fail: bool = False) -> None:
        self.name = name
        self.reads = reads
        self.fail = fail
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def run_batch(self) -> int | None:
        with self.lock:
            if self.fail and len(self.reads) == 1:
                raise RuntimeError("a fold failed")
            read = self.reads.pop(0) if self.reads else 0
            self.batches.append(read)
            return read


def _follower(runners: Mapping[str, Runner]) -> Follower:
    return Follower(
        cast(Mapping[str, ProjectionRunner], runners), cast(Any, None), cast(SharedLog, None),
        batch_size=10, linger=0.001,
    )


class SlowRunner(Runner):
    """Behind: a batch at a time, each taking a moment; new events reach ``quick`` meanwhile."""

    def __init__(self, quick: Runner) -> None:
        super().__init__("slow", [10] * 20)
        self.quick = quick

    def run_batch(self) -> int | None:
        read = super().run_batch()
        if read:
            with self.quick.lock:
                self.quick.reads.append(1)  # an event of the quick model's kind
            threading.Event().wait(0.005)
        return read


def test_a_model_at_the_head_keeps_folding_until_every_model_is_there() -> None:
    quick = Runner("quick", [3])
    slow = SlowRunner(quick)

    _follower({"quick": quick, "slow": slow}).catch_up()

    assert slow.batches[-1] == 0
    assert sum(slow.batches) == 200
    # the quick model folded what came while the slow one caught up, not only its first batch
    assert sum(quick.batches) > 3 + 10
    assert quick.reads == []  # and all of it, once the slow one was there


def test_a_model_that_fails_is_not_waited_for() -> None:
    quick = Runner("quick", [3])
    failing = Runner("failing", [10, 10, 10], fail=True)

    with pytest.raises(RuntimeError):
        _follower({"quick": quick, "failing": failing}).catch_up()

    assert quick.batches[-1] == 0


class GatedRunner(Runner):
    """Reads only once ``gate`` is set (another model has read), and sets ``read`` after its
    first batch."""

    def __init__(self, name: str, reads: list[int], gate: threading.Event | None = None) -> None:
        super().__init__(name, reads)
        self.gate = gate
        self.read = threading.Event()

    def run_batch(self) -> int | None:
        if self.gate is not None:
            self.gate.wait(5)
        read = super().run_batch()
        self.read.set()
        return read


def test_every_model_at_the_head_at_once_ends_the_catch_up_for_all() -> None:
    """The slow model touches the head, then the quick one finds both there: both stop, the
    slow one's later events left to the follower's next round. Stopping one by one, the quick
    model stopped for good while the slow one, given events again, went on alone."""
    slow = GatedRunner("slow", [0, 10, 10, 10])
    quick = GatedRunner("quick", [0], gate=slow.read)
    follower = Follower(
        cast(Mapping[str, ProjectionRunner], {"slow": slow, "quick": quick}), cast(Any, None),
        cast(SharedLog, None), batch_size=10, linger=0.2,
    )

    follower.catch_up()

    assert slow.batches == [0]
    assert slow.reads == [10, 10, 10]
    assert quick.batches == [0]
