"""The projections' shared reads of the log: each stretch read once, positions inside it served
from it, positions past it read again."""

from collections.abc import Sequence
from typing import Any, cast
from uuid import uuid4

from eventsourcing.persistence import Mapper, Notification
from eventsourcing.postgres import PostgresApplicationRecorder

from projections.shared_log import SharedLog


class Log:
    """A log whose positions skip 5 (a rolled-back insert), counting reads."""

    def __init__(self, ids: Sequence[int]) -> None:
        self.notifications = [Notification(uuid4(), 1, "t", b"{}", i) for i in ids]
        self.reads: list[tuple[int, int]] = []

    def select_notifications(self, start: int, limit: int) -> list[Notification]:
        self.reads.append((start, limit))
        return [n for n in self.notifications if n.id >= start][:limit]


def shared(log: Log) -> SharedLog:
    return SharedLog(cast(PostgresApplicationRecorder, log), cast(Mapper[Any], None))


def ids(notifications: Sequence[Notification]) -> list[int]:
    return [n.id for n in notifications]


def test_runners_at_the_same_position_share_one_read() -> None:
    log = Log([1, 2, 3, 4, 6, 7])
    reads = shared(log)
    assert ids(reads.notifications(1, 10)) == [1, 2, 3, 4, 6, 7]
    assert ids(reads.notifications(1, 10)) == [1, 2, 3, 4, 6, 7]
    assert ids(reads.notifications(1, 3)) == [1, 2, 3]
    assert log.reads == [(1, 10)]


def test_a_position_inside_a_stretch_gets_the_rest_of_it_even_in_a_gap() -> None:
    log = Log([1, 2, 3, 4, 6, 7])
    reads = shared(log)
    reads.notifications(1, 10)
    assert ids(reads.notifications(3, 10)) == [3, 4, 6, 7]
    assert ids(reads.notifications(5, 10)) == [6, 7]  # 5 was never committed
    assert log.reads == [(1, 10)]


def test_a_position_past_the_stretches_read_reads_the_log_again() -> None:
    log = Log([1, 2, 3])
    reads = shared(log)
    reads.notifications(1, 10)
    log.notifications.append(Notification(uuid4(), 1, "t", b"{}", 4))
    assert ids(reads.notifications(4, 10)) == [4]
    assert ids(reads.notifications(5, 10)) == []
    assert log.reads == [(1, 10), (4, 10), (5, 10)]


def test_only_the_last_few_stretches_are_kept() -> None:
    log = Log(range(1, 101))
    reads = shared(log)
    for start in range(1, 101, 10):
        reads.notifications(start, 10)
    reads.notifications(95, 10)  # in the newest stretch
    reads.notifications(1, 10)  # long gone: read again
    assert log.reads[-1] == (1, 10)
    assert len(log.reads) == 11


def test_a_fresh_read_always_reads_the_log_and_later_positions_share_it() -> None:
    log = Log([1, 2, 3])
    reads = shared(log)
    reads.notifications(1, 10)
    log.notifications.append(Notification(uuid4(), 1, "t", b"{}", 4))
    assert ids(reads.read(1, 10)) == [1, 2, 3, 4]  # inside a stretch read earlier: read again
    assert ids(reads.notifications(2, 10)) == [2, 3, 4]
    assert log.reads == [(1, 10), (1, 10)]
