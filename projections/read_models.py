"""The read models as one component: their migrations, runners, queries, status and rebuilds."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import structlog
from eventsourcing.application import Application
from eventsourcing.persistence import Mapper
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Connection, Cursor
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow

from infrastructure.migrations import apply_migrations
from infrastructure.notifications import Notifications
from infrastructure.pool_checks import ping_only_idle_connections
from projections.executions import ExecutionsProjection
from projections.failures import (
    ProjectionFailure,
    clear_failures,
    failure_summary,
    list_failures,
)
from projections.follower import LINGER, Follower
from projections.freshness import Freshness, ProjectionStatus, wait_until
from projections.runner import (
    TRACKING_MIGRATIONS,
    Projection,
    ProjectionRunner,
    ensure_tracking,
    lock_key,
    read_position,
    reset_position,
)
from projections.schedules import SchedulesProjection
from projections.service_calls import ServiceCallsProjection
from projections.shared_log import BATCH_SIZE, SharedLog
from projections.statistics import StatisticsProjection
from projections.status_intervals import StatusIntervalsProjection
from projections.workflow_definitions import WorkflowDefinitionsProjection
from projections.workflow_runs import WorkflowRunsProjection

log = structlog.get_logger(__name__)

PROJECTIONS: tuple[Projection, ...] = (
    ServiceCallsProjection(),
    ExecutionsProjection(),
    StatisticsProjection(),
    StatusIntervalsProjection(),
    SchedulesProjection(),
    WorkflowRunsProjection(),
    WorkflowDefinitionsProjection(),
)


def migrate_read_models(conn: Connection[Any]) -> None:
    """Apply the read models' versioned migrations (called at start-up)."""
    apply_migrations(conn, "projection_tracking", TRACKING_MIGRATIONS)
    for projection in PROJECTIONS:
        apply_migrations(conn, f"read_model:{projection.name}", projection.migrations)
    with conn.transaction(), conn.cursor(row_factory=psycopg.rows.dict_row) as curs:
        ensure_tracking(curs, [p.name for p in PROJECTIONS])


class ReadModels:
    def __init__(
        self,
        url: str,
        events: PostgresApplicationRecorder,
        mapper: Mapper[Any],
        notifications: Notifications,
        poll: float = 1.0,
        lock_url: str | None = None,
        linger: float = LINGER,
    ) -> None:
        """``lock_url``: a session connection's, for a rebuild's advisory lock (default
        ``url``); ``linger``: the follower's least time between rounds that fold events."""
        self._lock_url = lock_url or url
        self._linger = linger
        self._events = events
        self._mapper = mapper
        self._poll = poll
        self._datastore = _datastore(url, pool_size=len(PROJECTIONS) + 1)
        self._queries = _datastore(url, pool_size=4)
        self._log = SharedLog(events, mapper)  # one read and decode per event for all projections
        self.runners = {p.name: self.runner_for(p) for p in PROJECTIONS}
        self._stopped = threading.Event()
        self._notifications = notifications  # the events channel: the recorder NOTIFYs it
        self._unsubscribes: list[Callable[[], None]] = []
        self._wakeup = threading.Event()
        self._threads: list[threading.Thread] = []

    @classmethod
    def of(
        cls,
        url: str,
        app: Application[Any],
        notifications: Notifications,
        poll: float = 1.0,
        lock_url: str | None = None,
        linger: float = LINGER,
    ) -> "ReadModels":
        """The read models of the application's events (its recorder and mapper)."""
        if not isinstance(app.recorder, PostgresApplicationRecorder):
            raise TypeError("the read models need the PostgreSQL application recorder")
        return cls(url, app.recorder, app.mapper, notifications, poll, lock_url, linger)

    def runner_for(self, projection: Projection, batch_size: int = BATCH_SIZE) -> ProjectionRunner:
        return ProjectionRunner(
            projection, self._datastore, self._events, self._mapper, batch_size, self._log
        )

    def start(self) -> None:
        """Follow the log on one thread for every read model (``Follower``), woken by the
        events channel's notifies (or polling)."""
        follower = Follower(self.runners, self._datastore, self._log, linger=self._linger)
        self._unsubscribes.append(
            self._notifications.subscribe(self._events.channel_name, _setting(self._wakeup))
        )
        thread = threading.Thread(
            target=follower.run, args=(self._stopped, self._wakeup, self._poll),
            name="projections", daemon=True,
        )
        thread.start()
        self._threads.append(thread)
        log.info("projections_started", projections=list(self.runners))

    def stop(self) -> None:
        """Stop following the log (queries, rebuilds and runners still work)."""
        self._stopped.set()
        for unsubscribe in self._unsubscribes:
            unsubscribe()
        self._wakeup.set()  # a follower waiting for events stops now
        for thread in self._threads:
            thread.join(timeout=10)

    def close(self) -> None:
        self.stop()
        self._datastore.close()
        self._queries.close()

    @contextmanager
    def reading(
        self, name: str, min_position: int | None = None
    ) -> Iterator[tuple[Cursor[DictRow], Freshness]]:
        """A cursor on the read model, and how fresh it is (position read before the query);
        with ``min_position``, first wait (bounded) until the read model has reached it."""
        if min_position is not None:
            wait_until(lambda: self._reached(name, min_position))
        with self._queries.transaction(commit=False) as curs:
            position = read_position(curs, name)
            yield curs, Freshness(position, self._head(curs), min_position)

    def _reached(self, name: str, wanted: int) -> bool:
        """At ``wanted`` or beyond; or ``wanted`` is not in the log (nothing will reach it)."""
        with self._queries.transaction(commit=False) as curs:
            return read_position(curs, name) >= wanted or wanted > self._head(curs)

    def status(self) -> list[ProjectionStatus]:
        with self._queries.transaction() as curs:
            head = self._head(curs)
            positions = {name: read_position(curs, name) for name in self.runners}
            failed = failure_summary(curs)
        return [self._status(name, p, head, failed.get(name)) for name, p in positions.items()]

    def _status(self, name: str, position: int, head: int,
                failed: tuple[int, ProjectionFailure] | None) -> ProjectionStatus:
        count, latest = failed or (0, None)
        return ProjectionStatus(
            name, position, head, max(0, head - position), self._lag_seconds(position, head),
            failures=count,
            last_failed_position=latest.position if latest else None,
            last_error=latest.error if latest else None,
        )

    def failures(self, name: str | None = None, limit: int = 100) -> list[ProjectionFailure]:
        """The events the read models (or the one ``name``) could not fold, newest first."""
        with self._queries.transaction() as curs:
            return list_failures(curs, name, limit)

    def rebuild(self, name: str, progress: Callable[[int], None] | None = None) -> None:
        """Empty a read model (its failures too) and catch up from position 0, holding its
        lock throughout: live runners (in any process) pause, and resume from the rebuilt
        position. An event that still cannot be folded is recorded again and passed over."""
        runner = self.runners[name]
        with self._locked(name):
            self._empty(runner.projection)
            runner.catch_up(progress or (lambda _: None), locked=True)
            with self._datastore.transaction(commit=True) as curs:  # fresh planner statistics
                curs.execute(f"ANALYZE {', '.join(runner.projection.tables)}")

    def reset(self, name: str) -> None:
        """Empty a read model and set its position back to 0 (it catches up when run)."""
        with self._locked(name):
            self._empty(self.runners[name].projection)

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        with psycopg.connect(self._lock_url, autocommit=True) as lock:
            lock.execute("SELECT pg_advisory_lock(hashtext(%s))", (lock_key(name),))
            yield
            lock.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock_key(name),))

    def _empty(self, projection: Projection) -> None:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(f"TRUNCATE {', '.join(projection.tables)}")
            reset_position(curs, projection.name)
            clear_failures(curs, projection.name)

    def head(self) -> int:
        with self._queries.transaction() as curs:
            return self._head(curs)

    def event_count(self) -> int:
        """How many events a rebuild folds (the log's length)."""
        with self._queries.transaction() as curs:
            curs.execute(f"SELECT count(*) AS n FROM {self._events.events_table_name}")
            row = curs.fetchone()
        return int(row["n"]) if row else 0

    def _head(self, curs: Cursor[DictRow]) -> int:
        curs.execute(f"SELECT max(notification_id) AS head FROM {self._events.events_table_name}")
        row = curs.fetchone()
        return int(row["head"] or 0) if row else 0

    def _lag_seconds(self, position: int, head: int) -> float:
        """Age of the oldest event the projection has not folded yet (0 when caught up)."""
        if position >= head:
            return 0.0
        oldest = self._events.select_notifications(start=position + 1, limit=1)
        if not oldest:
            return 0.0
        event: Any = self._mapper.to_domain_event(oldest[0])
        return max(0.0, time.time() - float(event.timestamp.timestamp()))


def _setting(event: threading.Event) -> Callable[[str | None], None]:
    return lambda _payload: event.set()


def _datastore(url: str, pool_size: int) -> PostgresDatastore:
    """A pool of one connection, up to ``pool_size`` under load (closed again when idle)."""
    info = conninfo_to_dict(url)
    datastore = PostgresDatastore(
        dbname=str(info.get("dbname", "postgres")),
        host=str(info.get("host", "localhost")),
        port=str(info.get("port", "5432")),
        user=str(info.get("user", "postgres")),
        password=str(info.get("password", "")),
        pool_size=1,
        max_overflow=pool_size - 1,
    )
    ping_only_idle_connections(datastore.pool)
    return datastore
