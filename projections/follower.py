"""Following the log for every read model of a process: one thread, one transaction a round.

A round locks the read models it can (``pg_try_advisory_xact_lock`` per model, the key the
runners and rebuilds use) and reads their positions ``FOR UPDATE``, reads the new events once
(in the same transaction), folds each model's batch and writes every position it advanced, all
in ONE transaction: still exactly once per model (its rows and its position commit together),
and a model another process or a rebuild holds is left to that one. Each model keeps its own
position: models far apart (after a reset, or one that was failing) get reads of their own.

A round that finds a model a full batch behind (a burst, a restart) hands over to
``catch_up``: each model in a thread and transactions of its own until every model has reached
the head.

Rounds run on wake-ups, not on a clock: the events channel's NOTIFY (one subscription for the
process) or, without one, every ``poll`` seconds. The flag is cleared before the round reads
the log, so an event committed after the read sets it again. A wake-up that comes within
``linger`` of a round that folded events waits out the rest of it: under a stream of small
commits a round gathers several of them (a round costs about the same for one event as for
fifty), and with no new events nothing runs. The first event after a quiet spell is folded at
once; a steady stream is folded ``linger`` apart, which bounds the lag it adds.

One model's failure never holds back the others. A round is first tried plainly; if it fails
for any reason but the database being away, it is undone and run again with each model in a
savepoint: an event a model cannot fold is recorded and passed over (``isolating.py``), and a
model that fails for another reason is left out (its position stays) and tried again after a
backoff of its own. The database away fails the round: it is retried after a backoff.
"""

import bisect
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

import structlog
from eventsourcing.persistence import IntegrityError, Notification
from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow

from application.supervision import Backoff, supervise
from infrastructure.database_errors import unreachable
from projections.failures import ProjectionFailure, describe, log_failure, record_failure
from projections.runner import TRACKING_TABLE, FoldError, ProjectionRunner, lock_key
from projections.shared_log import BATCH_SIZE, SharedLog

log = structlog.get_logger(__name__)

LINGER = 0.2  # seconds from a round that folded events to the next (gathering wake-ups)

# The models whose lock this transaction gets (each tried once: a MATERIALIZED query), and
# their positions, read FOR UPDATE (none: 0).
_LOCK_POSITIONS = f"""
WITH locked AS MATERIALIZED (
    SELECT name FROM unnest(%s::text[], %s::text[]) AS models(name, key)
    WHERE pg_try_advisory_xact_lock(hashtext(key))
)
SELECT locked.name, t.notification_id FROM locked LEFT JOIN LATERAL (
    SELECT notification_id FROM {TRACKING_TABLE} WHERE application_name = locked.name FOR UPDATE
) AS t ON true
"""
# eventsourcing's tracking upsert for several models: a position only ever moves forward.
_ADVANCE = (
    f"INSERT INTO {TRACKING_TABLE} AS t SELECT * FROM unnest(%s::text[], %s::bigint[]) "
    "ON CONFLICT (application_name) DO UPDATE SET notification_id = EXCLUDED.notification_id "
    "WHERE t.notification_id < EXCLUDED.notification_id RETURNING application_name"
)


class Round(NamedTuple):
    folded: int  # events in the batches folded
    caught_up: bool  # every read reached the head of the log


@dataclass
class _Retry:
    """A model left out after a failure: when it is tried again, and the wait after that."""

    backoff: Backoff = field(default_factory=Backoff)
    at: float = 0.0


class Follower:
    def __init__(
        self,
        runners: Mapping[str, ProjectionRunner],
        datastore: PostgresDatastore,
        shared: SharedLog,
        batch_size: int = BATCH_SIZE,
        linger: float = LINGER,
    ) -> None:
        self._runners = dict(runners)
        self._linger = linger
        self._datastore = datastore
        self._log = shared
        self._batch_size = batch_size
        self._retries: dict[str, _Retry] = {}

    def run(self, stopped: threading.Event, wakeup: threading.Event, poll: float) -> None:
        """Run rounds until stopped: at once while behind, else on a wake-up (or ``poll``)."""

        def step() -> None:
            wakeup.clear()
            done = self.run_round()
            if not done.caught_up:
                self.catch_up()
                return
            ended = time.monotonic()
            if wakeup.wait(self._timeout(poll)) and done.folded:
                stopped.wait(ended + self._linger - time.monotonic())

        supervise(step, stopped, "projections")

    def run_round(self) -> Round:
        """Fold the new events into every read model this process gets the lock of."""
        names = self._due()
        if not names:
            return Round(0, True)
        try:
            return self._round(names, careful=False)
        except Exception as error:
            if unreachable(error):
                raise
            log.info("projection_round_retried", error=describe(error))
        return self._round(names, careful=True)

    def catch_up(self) -> None:
        """Behind by more than a batch (a burst, a restart): each model catches up in a thread
        and transactions of its own, as rebuilds do (``ProjectionRunner.run_batch``, the same
        locks), so one model's writes run in PostgreSQL while another folds in Python; one
        round's transaction would make them wait for each other. It ends once every model has
        reached the head of the log."""
        names = self._due()
        if not names:
            return
        busy = set(names)  # the models whose last batch read events
        done = threading.Event()  # every model at the head at once: all stop
        with ThreadPoolExecutor(len(names), thread_name_prefix="catch-up") as pool:
            futures = [
                pool.submit(self._catch_up, self._runners[n], busy, done) for n in names
            ]
            for future in futures:
                future.result()  # a failure goes to the supervisor (logged, backed off)

    def _catch_up(
        self, runner: ProjectionRunner, busy: set[str], done: threading.Event
    ) -> None:
        """Batch after batch until the model reaches the head of the log (a shorter batch is
        only the end of a stretch another model read); there, a batch every ``linger`` while any
        other model still reads events. A model with little to fold (most events are not its
        kind) is at the head long before the others: stopping there, it fell behind again while
        they caught up (the largest lag in a burst). The first model to find every model at the
        head ends the catch-up for all (each after its batch in hand): one stopping alone would
        be left behind. Set operations are atomic under the GIL."""
        try:
            while not done.is_set() and (read := runner.run_batch()) is not None:
                if read:
                    busy.add(runner.name)
                    continue
                busy.discard(runner.name)
                if not busy:
                    done.set()
                else:
                    done.wait(self._linger)
        finally:
            busy.discard(runner.name)  # failed or left to another folder: not waited for

    def _due(self) -> list[str]:
        """The models to fold now: all but those waiting out a failure."""
        now = time.monotonic()
        return [name for name in self._runners
                if name not in self._retries or self._retries[name].at <= now]

    def _timeout(self, poll: float) -> float:
        """Seconds until the next round without a wake-up: ``poll``, or a model's retry (one
        whose time has come but another process had is tried on the next wake-up)."""
        now = time.monotonic()
        return min([poll, *(retry.at - now for retry in self._retries.values() if retry.at > now)])

    def _round(self, names: list[str], *, careful: bool) -> Round:
        advanced: dict[str, int] = {}
        failures: list[ProjectionFailure] = []
        left_out: set[str] = set()
        with self._datastore.transaction(commit=True) as curs:
            positions = _lock_positions(curs, names)
            batches, caught_up = self._batches(curs, positions)
            for name, notifications in batches.items():
                runner = self._runners[name]
                if not careful:
                    runner.fold(curs, notifications, isolating=False)
                elif (passed_over := self._fold_carefully(curs, runner, notifications)) is None:
                    left_out.add(name)
                    continue
                else:
                    failures.extend(passed_over)
                advanced[name] = notifications[-1].id
            for failure in failures:
                record_failure(curs, failure)
            _advance(curs, advanced)
        for failure in failures:  # once committed
            log_failure(failure)
        for name in positions.keys() - left_out:  # tried, and did not fail: no backoff
            self._retries.pop(name, None)
        return Round(sum(len(batches[name]) for name in advanced), caught_up)

    def _batches(
        self, curs: Cursor[DictRow], positions: dict[str, int]
    ) -> tuple[dict[str, Sequence[Notification]], bool]:
        """Each model's next batch (the models with new events), and whether every read
        reached the head. One read from the lowest position serves every model whose position
        falls inside it; a model past the end of a full read gets a read of its own."""
        batches: dict[str, Sequence[Notification]] = {}
        caught_up = True
        waiting = sorted(positions.items(), key=lambda item: item[1])
        while waiting:
            read = self._log.read(waiting[0][1] + 1, self._batch_size, curs)
            full = len(read) >= self._batch_size
            caught_up = caught_up and not full
            end = read[-1].id if read else waiting[0][1]
            ids = [n.id for n in read]
            beyond = []
            for name, position in waiting:
                if full and position >= end:
                    beyond.append((name, position))
                elif batch := read[bisect.bisect_right(ids, position):]:
                    batches[name] = batch
            waiting = beyond
        return batches, caught_up

    def _fold_carefully(
        self, curs: Cursor[DictRow], runner: ProjectionRunner,
        notifications: Sequence[Notification],
    ) -> list[ProjectionFailure] | None:
        """Fold one model's batch in a savepoint, again isolating the events that cannot be
        folded if it fails for its events; the failures to record, or None: the model failed
        for another reason and waits out a backoff (its part undone, its position kept)."""
        for isolating in (False, True):
            try:
                with curs.connection.transaction():  # a savepoint
                    return runner.fold(curs, notifications, isolating=isolating)
            except FoldError as error:
                self._back_off(runner.name, error)
                return None
            except Exception as error:
                if unreachable(error) or isolating:
                    raise
                log.warning("projection_batch_failed", projection=runner.name,
                            error=describe(error))
        return None

    def _back_off(self, name: str, error: FoldError) -> None:
        retry = self._retries.setdefault(name, _Retry())
        wait = retry.backoff.next()
        retry.at = time.monotonic() + wait
        log.warning("loop_failed", loop=f"projection:{name}", error=str(error), retry_in=wait,
                    exc_info=error)


def _lock_positions(curs: Cursor[DictRow], names: list[str]) -> dict[str, int]:
    """The positions of the models whose lock this transaction got (rows locked too)."""
    curs.execute(_LOCK_POSITIONS, (names, [lock_key(name) for name in names]))
    return {row["name"]: int(row["notification_id"] or 0) for row in curs.fetchall()}


def _advance(curs: Cursor[DictRow], positions: dict[str, int]) -> None:
    if not positions:
        return
    curs.execute(_ADVANCE, (list(positions), list(positions.values())))
    moved = {row["application_name"] for row in curs.fetchall()}
    if stuck := positions.keys() - moved:
        raise IntegrityError(f"Failed to record tracking for {sorted(stuck)}")
