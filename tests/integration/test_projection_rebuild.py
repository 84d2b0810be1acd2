"""Rebuilding a read model from position 0 gives the very tables the live runners built."""



from infrastructure.container import Container
from projections.read_models import PROJECTIONS
from tests.support.db_queries import event_count
from tests.support.read_models import checksums
from tests.support.waiting import wait_until
from tests.support.workload import run_until_idle, submit_calls


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
    # progress counted every event, per model
    assert sum(seen) == len(PROJECTIONS) * event_count(database_url)


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
