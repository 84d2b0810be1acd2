"""The projections' shared reads of the log: each stretch read once, positions inside it served
from it, positions past it read again."""

from collections.abc import Sequence
from typing import Any, cast
from uuid import uuid4

from eventsourcing.persistence import Mapper, Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import TopicError

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


class CountingMapper:
    """Decodes a notification to its topic; a topic "unknown" has no class."""

    def __init__(self) -> None:
        self.decoded: list[int] = []

    def to_domain_event(self, notification: Notification) -> str:
        self.decoded.append(notification.id)
        if notification.topic == "unknown":
            raise TopicError(f"no class for {notification.topic}")
        return f"event {notification.id}"


def test_each_event_is_decoded_once_and_an_unknown_topic_is_given_in_its_place() -> None:
    log = Log([1, 2, 3])
    log.notifications.append(Notification(uuid4(), 1, "unknown", b"{}", 4))
    mapper = CountingMapper()
    reads = SharedLog(cast(PostgresApplicationRecorder, log), cast(Mapper[Any], mapper))
    batch = reads.notifications(1, 10)

    first = reads.events(batch)
    again = reads.events(batch[1:])

    assert first[:3] == ["event 1", "event 2", "event 3"]
    assert isinstance(first[3], TopicError)
    assert again == first[1:]
    assert mapper.decoded == [1, 2, 3, 4]


def test_decoded_events_are_bounded() -> None:
    log = Log(range(1, 41))
    mapper = CountingMapper()
    reads = SharedLog(cast(PostgresApplicationRecorder, log), cast(Mapper[Any], mapper),
                      capacity=16)
    for start in range(1, 41, 8):
        assert reads.events(reads.notifications(start, 8)) == [
            f"event {i}" for i in range(start, start + 8)
        ]
    assert reads.events(reads.notifications(33, 8)) == [f"event {i}" for i in range(33, 41)]
    assert len(mapper.decoded) == 40  # the newest were kept
    assert len(reads._decoded) <= 16


def test_a_batch_partly_decoded_before_survives_the_eviction_its_rest_causes() -> None:
    log = Log(range(1, 21))
    reads = SharedLog(cast(PostgresApplicationRecorder, log),
                      cast(Mapper[Any], CountingMapper()), capacity=8)
    stretch = reads.notifications(1, 20)
    reads.events(stretch[:8])  # 1-8 decoded: the cache is full

    later = reads.events(stretch[:12])  # 1-8 cached; 9-12 evict the oldest, in this batch

    assert later == [f"event {i}" for i in range(1, 13)]
