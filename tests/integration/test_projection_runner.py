"""Projection runners: exactly once, resumable after a crash, single writer, tolerant."""

import threading
from collections.abc import Sequence
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent
from psycopg import Cursor
from psycopg.rows import DictRow

from infrastructure.container import Container
from projections.read_models import PROJECTIONS
from projections.runner import LogEvent, Projection
from tests.support.db_queries import rows
from tests.support.read_models import catch_up, checksums, checksums_then_reset
from tests.support.workload import run_until_idle, submit_calls

pytestmark = pytest.mark.smoke


class CrashingProjection:
    """Writes a batch's rows, then dies before the transaction commits (on batch ``crash_on``)."""

    def __init__(self, inner: Projection, crash_on: int) -> None:
        self.inner, self.crash_on, self.batches = inner, crash_on, 0
        self.name, self.topics = inner.name, inner.topics
        self.tables, self.migrations = inner.tables, inner.migrations

    def fold(self, curs: Cursor[DictRow], events: Sequence[LogEvent]) -> None:
        self.inner.fold(curs, events)
        self.batches += 1
        if self.batches == self.crash_on:
            raise RuntimeError("killed mid-batch")


def _checksums_then_reset(container: Container, database_url: str) -> dict[str, str]:
    """Build the read models from a workload of 12 calls; return their checksums and empty
    them (positions back to 0) for the runners under test to build again."""
    submit_calls(container, 12)
    run_until_idle(container)
    return checksums_then_reset(container, database_url)


def test_a_workload_becomes_one_row_per_call_and_per_attempt(
    rm_container: Container, database_url: str
) -> None:
    submit_calls(rm_container, 8)
    run_until_idle(rm_container)
    catch_up(rm_container)
    calls = rows(
        database_url,
        "SELECT split_part(host, '.', 1), status, attempt, failure_reason, last_status_code "
        "FROM duecall_rm_service_calls ORDER BY created_at",
    )
    assert {row[1:] for row in calls} == {
        ("succeeded", 1, None, 200),
        ("succeeded", 2, None, 200),
        ("failed", 3, "attempts_exhausted", None),
        ("failed", 1, "not_retryable", 404),
    }
    executions = rows(database_url, "SELECT count(*), count(*) FILTER (WHERE name = '') "
                                    "FROM duecall_rm_executions")
    assert executions == [(2 * (1 + 2 + 3 + 1), 0)]


def test_a_projector_killed_mid_batch_resumes_with_exactly_the_same_rows(
    rm_container: Container, database_url: str
) -> None:
    expected = _checksums_then_reset(rm_container, database_url)

    for projection in PROJECTIONS:
        crashing = rm_container.read_models.runner_for(CrashingProjection(projection, 2), 20)
        with pytest.raises(RuntimeError, match="killed mid-batch"):
            crashing.catch_up(lambda _: None)
        rm_container.read_models.runner_for(projection, 20).catch_up(lambda _: None)

    assert checksums(database_url) == expected


def test_two_runners_of_one_projection_never_apply_an_event_twice(
    rm_container: Container, database_url: str
) -> None:
    expected = _checksums_then_reset(rm_container, database_url)

    def follow(projection: Projection) -> None:
        runner = rm_container.read_models.runner_for(projection, 7)
        for _ in range(200):  # a runner that loses the lock gets None and tries again
            if runner.run_batch() == 0:
                return

    threads = [threading.Thread(target=follow, args=(p,)) for p in PROJECTIONS for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    catch_up(rm_container)
    assert checksums(database_url) == expected


def test_events_of_unknown_types_are_passed_over(rm_container: Container) -> None:
    submit_calls(rm_container, 1)
    foreign = StoredEvent(uuid4(), 1, "somewhere.else:Unknown.Happened", b"{}")
    rm_container.service_calls.recorder.insert_events([foreign])
    catch_up(rm_container)
    statuses = rm_container.read_models.status()
    assert {s.lag_events for s in statuses} == {0}
    assert {s.lag_seconds for s in statuses} == {0.0}
