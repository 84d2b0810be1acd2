"""Two folders of one read model (the live follower, a runner's catch-up, another process, a
reset or rebuild) never fold a row from stale state: each takes the model's advisory lock
before it reads the position, the log and the rows, a reset waits for a batch in flight, and a
round reads the position as last committed even if its snapshot is older than its lock. And a
catch-up returns only once the model has folded the log, whoever folded it: a batch another
folder holds is waited for, not taken for the end of the log (a catch-up that gave up there
left a table half folded while the follower's round was still to commit)."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg.rows import dict_row

from application.schedules import CreateSchedule
from domain.schedule_spec import ScheduleSpec
from infrastructure.container import Container
from projections.follower import Follower, _lock_positions
from projections.read_models import PROJECTIONS
from projections.runner import Projection, lock_key, read_position, reset_position
from tests.support.read_models import checksum, checksums_then_reset

TENANT = "t-folds"
NOWHERE = "http://127.0.0.1:9/never"  # no workers run here: a run stays on its first step
MODELS = ("workflow_runs", "schedules", "service_calls")  # row-state folds, and a plain one
HELD = 0.5  # seconds a folder is seen to wait while the lock is held elsewhere


def _projection(name: str) -> Projection:
    return next(p for p in PROJECTIONS if p.name == name)


def _tables(database_url: str, names: tuple[str, ...] = MODELS) -> dict[str, str]:
    return {t: checksum(database_url, t) for n in names for t in _projection(n).tables}


def _wave(c: Container, wave: int) -> None:
    """Workflow runs (a cancelled one: its steps' counts move) and schedules (paused, resumed,
    triggered: their counts move; deleted), with their calls."""
    steps = [{"id": "a", "request": {"method": "GET", "url": NOWHERE}},
             {"id": "b", "needs": ["a"], "request": {"method": "GET", "url": NOWHERE}}]
    runs = [c.workflows.submit(TENANT, {"name": f"run-{wave}-{i}", "steps": steps}, None).run.id
            for i in range(3)]
    c.workflows.cancel(TENANT, runs[0], "changed my mind")
    c.workflows.pause(TENANT, runs[1])
    template = {"request": {"method": "POST", "url": NOWHERE}}
    for i in range(2):
        schedule = c.schedules.create(CreateSchedule(
            TENANT, f"every-{wave}-{i}", template, ScheduleSpec.from_dict({"interval_seconds": 60})
        )).schedule
        c.schedules.pause(TENANT, schedule.id)
        c.schedules.resume(TENANT, schedule.id)
        c.schedules.trigger(TENANT, schedule.id)
        if i:
            c.schedules.delete(TENANT, schedule.id)


def _position(c: Container, name: str) -> int:
    with c.read_models.reading(name) as (_, freshness):
        return freshness.position


def _caught_up(c: Container, names: tuple[str, ...] = MODELS) -> bool:
    head = c.read_models.head()
    return all(_position(c, name) == head for name in names)


@contextmanager
def _holding(database_url: str, name: str) -> Iterator[None]:
    """The model's lock held by a transaction elsewhere, as a round of another process's
    follower holds it while it folds."""
    with psycopg.connect(database_url) as other:
        other.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock_key(name),))
        yield
        other.rollback()


def _started(target: Callable[[], object]) -> tuple[threading.Thread, threading.Event]:
    """``target`` on a thread; the event is set once it has returned."""
    done = threading.Event()

    def run() -> None:
        target()
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done


@pytest.mark.parametrize("name", MODELS)
def test_a_catch_up_waits_for_a_batch_another_folder_holds_and_folds_the_whole_log(
    rm_container: Container, database_url: str, name: str
) -> None:
    c = rm_container
    _wave(c, 0)
    tables = _projection(name).tables
    expected = {t: v for t, v in checksums_then_reset(c, database_url).items() if t in tables}
    runner = c.read_models.runner_for(_projection(name), 2)

    with _holding(database_url, name):
        assert runner.run_batch() is None  # a batch of its own skips it (the follower's way)
        thread, done = _started(lambda: runner.catch_up(lambda _: None))
        assert not done.wait(HELD)  # not the end of the log: waited for
    thread.join(timeout=10)

    assert done.is_set()
    assert _position(c, name) == c.read_models.head()
    assert _tables(database_url, (name,)) == expected


@pytest.mark.parametrize("empty", ["reset", "rebuild"])
def test_a_reset_or_rebuild_waits_for_a_batch_in_flight(
    rm_container: Container, database_url: str, empty: str
) -> None:
    c = rm_container
    _wave(c, 0)
    checksums_then_reset(c, database_url)
    c.read_models.runner_for(_projection("workflow_runs")).catch_up(lambda _: None)
    folded = _tables(database_url, ("workflow_runs",))
    head = c.read_models.head()

    with _holding(database_url, "workflow_runs"):
        thread, done = _started(lambda: getattr(c.read_models, empty)("workflow_runs"))
        assert not done.wait(HELD)  # nothing emptied under a fold that read its rows
        assert _tables(database_url, ("workflow_runs",)) == folded
    thread.join(timeout=10)

    assert done.is_set()
    assert _position(c, "workflow_runs") == (head if empty == "rebuild" else 0)


def test_a_round_reads_the_position_a_reset_committed_after_its_snapshot(
    rm_container: Container, database_url: str
) -> None:
    """A round's one statement takes its snapshot before it tries the lock; a reset that
    commits in between is what it reads (``FOR UPDATE`` gives the row's latest version),
    not the position in its snapshot."""
    c = rm_container
    _wave(c, 0)
    checksums_then_reset(c, database_url)
    c.read_models.runner_for(_projection("workflow_runs")).catch_up(lambda _: None)
    assert _position(c, "workflow_runs") > 0
    read: list[dict[str, int]] = []

    def round_positions() -> None:
        with c.read_models._datastore.transaction() as curs:  # undone: only its reads count
            read.append(_lock_positions(curs, ["workflow_runs"]))

    with psycopg.connect(database_url, row_factory=dict_row) as other:
        with other.cursor() as curs:
            reset_position(curs, "workflow_runs")  # the row locked until this commits
        thread, done = _started(round_positions)
        assert not done.wait(HELD)
        other.commit()
    thread.join(timeout=10)

    assert read == [{"workflow_runs": 0}]


def test_a_runner_and_the_follower_in_turns_with_a_reset_and_a_rebuild_fold_a_rebuilds_rows(
    rm_container: Container, database_url: str
) -> None:
    """Batches of one (a runner) and of two (a follower's rounds) of the same models, in
    turns, reading the same shared log; the log grows between turns, and the models are
    reset and rebuilt while the others have folded part of it: the rows are a rebuild's."""
    c = rm_container
    models = [_projection(name) for name in MODELS]
    runners = [c.read_models.runner_for(p, 1) for p in models]
    follower = Follower({p.name: c.read_models.runner_for(p, 2) for p in models},
                        c.read_models._datastore, c.read_models._log, batch_size=2)

    for wave in range(3):
        _wave(c, wave)
        turns = 0
        while not _caught_up(c):
            for runner in runners:
                runner.run_batch()
            follower.run_round()
            turns += 1
            if (wave, turns) == (1, 5):
                for name in MODELS:
                    c.read_models.reset(name)
            if (wave, turns) == (2, 5):
                c.read_models.rebuild("workflow_runs")
            assert turns < 10_000
    folded = _tables(database_url)

    for name in MODELS:
        c.read_models.rebuild(name)
    assert _tables(database_url) == folded
    with c.read_models.reading("workflow_runs") as (curs, _):
        assert read_position(curs, "workflow_runs") == c.read_models.head()
        curs.execute("SELECT count(*) AS n FROM duecall_rm_workflow_runs "
                     "WHERE status = 'cancelled' AND steps_running = 0 AND steps_cancelled = 2")
        row = curs.fetchone()
    assert row is not None
    assert row["n"] == 3  # one cancelled run a wave, its steps counted cancelled
