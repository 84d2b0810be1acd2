"""Rebuilding a read model from position 0 gives the very tables the live runners built."""

from collections.abc import Iterator

import psycopg
import pytest

from infrastructure.container import Container
from projections.read_models import PROJECTIONS
from tests.support.read_models import checksums, reset_read_models
from tests.support.waiting import wait_until
from tests.support.workload import run_until_idle, submit_calls, workload_settings


@pytest.fixture
def rm_container(database_url: str, clean_database: str) -> Iterator[Container]:
    container = Container.build(workload_settings(database_url))
    reset_read_models(container)
    try:
        yield container
    finally:
        container.close()


def _caught_up(container: Container) -> bool:
    return all(s.lag_events == 0 for s in container.read_models.status())


def test_a_rebuild_from_zero_equals_the_live_built_tables(
    rm_container: Container, database_url: str
) -> None:
    rm_container.start_projections()
    for _ in range(3):  # the live runners see the log grow in several steps
        submit_calls(rm_container, 10)
        run_until_idle(rm_container)
    wait_until(lambda: _caught_up(rm_container), timeout=10)
    live = checksums(database_url)

    seen: list[int] = []
    for projection in PROJECTIONS:
        rm_container.read_models.rebuild(projection.name, seen.append)

    assert checksums(database_url) == live
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM duecall_events").fetchone()
    assert row is not None
    assert sum(seen) == len(PROJECTIONS) * row[0]  # progress counted every event, per model


def test_the_live_runner_waits_for_a_rebuild_and_then_follows_on(
    rm_container: Container, database_url: str
) -> None:
    rm_container.start_projections()
    submit_calls(rm_container, 8)
    run_until_idle(rm_container)
    rm_container.read_models.rebuild("service_calls")
    submit_calls(rm_container, 4)
    wait_until(lambda: _caught_up(rm_container), timeout=10)
    rows = checksums(database_url)
    rm_container.read_models.rebuild("service_calls")
    assert checksums(database_url) == rows
