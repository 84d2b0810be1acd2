"""The live follower: every read model in one transaction a round, rounds only on wake-ups,
the same rows as one model at a time, and one model's failure never holding back the others."""

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
import pytest
from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from structlog.testing import capture_logs

from infrastructure.container import Container
from infrastructure.database import DATABASE_UNAVAILABLE
from projections.follower import LINGER, Follower
from projections.read_models import PROJECTIONS
from projections.runner import LogEvent, Projection
from tests.support.projection_failures import Refusing, submit, submit_unfoldable
from tests.support.read_models import checksums, checksums_then_reset
from tests.support.waiting import wait_until
from tests.support.workload import run_until_idle, submit_calls


class Counting:
    """A datastore that counts the transactions begun through it."""

    def __init__(self, inner: PostgresDatastore) -> None:
        self.inner, self.transactions = inner, 0

    def transaction(self, *, commit: bool = False) -> AbstractContextManager[Cursor[DictRow]]:
        self.transactions += 1
        return self.inner.transaction(commit=commit)


class Crashing(Refusing):
    """A projection that fails for a reason not its events' (a bug) while ``broken``."""

    def fold(self, curs: Cursor[DictRow], events: Sequence[LogEvent]) -> None:
        if self.broken and events:
            raise RuntimeError("a bug in the projector")
        self.inner.fold(curs, events)


def _follower(
    container: Container, batch_size: int = 1000,
    replace: Callable[[Projection], Projection] = lambda p: p,
) -> tuple[Follower, Counting]:
    read_models = container.read_models
    runners = {p.name: read_models.runner_for(replace(p), batch_size) for p in PROJECTIONS}
    counting = Counting(read_models._datastore)
    datastore: Any = counting
    return Follower(runners, datastore, read_models._log, batch_size), counting


def _positions(container: Container) -> dict[str, int]:
    return {s.name: s.position for s in container.read_models.status()}


def _head(container: Container) -> int:
    return container.read_models.head()


def test_one_round_folds_every_read_model_in_one_transaction(
    rm_container: Container, database_url: str
) -> None:
    submit_calls(rm_container, 12)
    run_until_idle(rm_container)
    expected = checksums_then_reset(rm_container, database_url)
    follower, counting = _follower(rm_container)

    done = follower.run_round()

    assert done.caught_up
    assert done.folded > 0
    assert counting.transactions == 1
    assert set(_positions(rm_container).values()) == {_head(rm_container)}
    assert checksums(database_url) == expected
    assert follower.run_round().folded == 0  # nothing new: nothing folded


@pytest.mark.parametrize("batch_size", [1, 5])
def test_rounds_give_the_rows_of_one_model_at_a_time_even_with_models_far_apart(
    rm_container: Container, database_url: str, batch_size: int
) -> None:
    submit_calls(rm_container, 10)
    run_until_idle(rm_container)
    expected = checksums_then_reset(rm_container, database_url)
    rm_container.read_models.runner_for(PROJECTIONS[0], 1000).catch_up(lambda _: None)
    partly = rm_container.read_models.runner_for(PROJECTIONS[2], 7)
    partly.run_batch()
    partly.run_batch()
    positions = _positions(rm_container)
    assert len(set(positions.values())) == 3  # at the head, at 14, at 0
    follower, counting = _follower(rm_container, batch_size)

    rounds = 0
    while not follower.run_round().caught_up:  # full reads: not caught up yet
        rounds += 1
        assert rounds < 1000

    assert set(_positions(rm_container).values()) == {_head(rm_container)}
    assert checksums(database_url) == expected
    assert counting.transactions == rounds + 1


def test_a_bad_event_is_recorded_for_its_model_and_the_others_fold_everything(
    rm_container: Container,
) -> None:
    submit_unfoldable(rm_container, "t-bad")
    submit(rm_container, "t-good")
    follower, counting = _follower(rm_container)

    with capture_logs() as logs:
        assert follower.run_round().caught_up

    assert set(_positions(rm_container).values()) == {_head(rm_container)}
    [failure] = rm_container.read_models.failures()
    assert failure.projection == "service_calls"
    assert failure.error.startswith("InvalidDatetimeFormat")
    assert counting.transactions == 2  # the plain round, undone; then one savepoint a model
    assert "projection_event_failed" in {entry["event"] for entry in logs}


def test_a_model_failing_for_another_reason_waits_out_a_backoff_and_the_others_go_on(
    rm_container: Container,
) -> None:
    call = submit(rm_container, "t1")
    crashing = Crashing(PROJECTIONS[0], call)
    follower, _ = _follower(
        rm_container, replace=lambda p: crashing if p.name == crashing.name else p
    )

    with capture_logs() as logs:
        follower.run_round()
    positions, head = _positions(rm_container), _head(rm_container)
    assert positions.pop(crashing.name) == 0  # left out, its position kept
    assert set(positions.values()) == {head}
    assert rm_container.read_models.failures() == []  # not recorded as the events' fault
    assert any(entry["event"] == "loop_failed" for entry in logs)

    submit(rm_container, "t1")
    follower.run_round()
    assert _positions(rm_container)[crashing.name] == 0
    crashing.broken = False  # the fix: tried again once its backoff is over

    def caught_up() -> bool:
        follower.run_round()
        return set(_positions(rm_container).values()) == {_head(rm_container)}

    wait_until(caught_up, timeout=5)


def test_the_database_away_fails_the_round_and_nothing_is_recorded(
    rm_container: Container,
) -> None:
    call = submit(rm_container, "t1")

    class Away(Refusing):
        def fold(self, curs: Cursor[DictRow], events: Sequence[LogEvent]) -> None:
            raise psycopg.OperationalError("connection lost")

    follower, _ = _follower(
        rm_container, replace=lambda p: Away(p, call) if p.name == "executions" else p
    )
    with pytest.raises(DATABASE_UNAVAILABLE):
        follower.run_round()
    assert set(_positions(rm_container).values()) == {0}
    assert rm_container.read_models.failures() == []


def test_two_followers_never_apply_an_event_twice(
    rm_container: Container, database_url: str
) -> None:
    submit_calls(rm_container, 12)
    run_until_idle(rm_container)
    expected = checksums_then_reset(rm_container, database_url)
    followers = [_follower(rm_container, batch_size=3)[0] for _ in range(2)]

    def follow(follower: Follower) -> None:
        for _ in range(500):  # a round that gets no lock folds nothing and is "caught up"
            follower.run_round()
            if set(_positions(rm_container).values()) == {_head(rm_container)}:
                return

    threads = [threading.Thread(target=follow, args=(f,)) for f in followers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert checksums(database_url) == expected


@contextmanager
def _running(follower: Follower, poll: float) -> Iterator[threading.Event]:
    """The follower on a thread of its own; yields its wake-up flag."""
    stopped, wakeup = threading.Event(), threading.Event()
    thread = threading.Thread(target=follower.run, args=(stopped, wakeup, poll), daemon=True)
    thread.start()
    try:
        yield wakeup
    finally:
        stopped.set()
        wakeup.set()
        thread.join(timeout=10)


def test_a_caught_up_follower_runs_a_round_only_when_woken(rm_container: Container) -> None:
    submit(rm_container, "t1")
    follower, counting = _follower(rm_container)
    with _running(follower, poll=60) as wakeup:
        wait_until(lambda: set(_positions(rm_container).values()) == {_head(rm_container)})
        time.sleep(0.3)
        idle = counting.transactions
        submit(rm_container, "t1")  # not announced: no round, no poll
        time.sleep(0.5)
        assert counting.transactions == idle
        assert _positions(rm_container)["service_calls"] < _head(rm_container)

        wakeup.set()
        wait_until(lambda: set(_positions(rm_container).values()) == {_head(rm_container)})
        assert counting.transactions == idle + 1


def test_wake_ups_close_together_are_gathered_into_few_rounds(rm_container: Container) -> None:
    follower, counting = _follower(rm_container)
    with _running(follower, poll=60) as wakeup:
        time.sleep(0.2)
        before = counting.transactions
        started = time.monotonic()
        for _ in range(10):
            submit(rm_container, "t1")
            wakeup.set()
        wait_until(lambda: set(_positions(rm_container).values()) == {_head(rm_container)})
        time.sleep(2 * LINGER)
        took = time.monotonic() - started
        # at most one round a LINGER (and the first at once), whatever the wake-ups
        assert counting.transactions - before <= took / LINGER + 2


def test_a_model_a_batch_behind_catches_up_on_its_own_with_the_same_rows(
    rm_container: Container, database_url: str
) -> None:
    submit_calls(rm_container, 12)
    run_until_idle(rm_container)
    expected = checksums_then_reset(rm_container, database_url)
    follower, _ = _follower(rm_container, batch_size=5)

    behind = follower.run_round()
    assert not behind.caught_up
    follower.catch_up()

    assert set(_positions(rm_container).values()) == {_head(rm_container)}
    assert checksums(database_url) == expected
