"""One LISTEN connection per process: the outbox's worker loops, the read-model runners and the
live event stream's tail are all woken through it, and still are after its connection is
killed and it reconnects.

Every consumer polls only every ``QUIET`` seconds here, so anything that happens sooner was
woken by a notify.
"""

import asyncio
from collections.abc import Iterator

import psycopg
import pytest

from application.event_stream import EventHub, StreamFilter
from infrastructure.container import Container
from tests.support.read_models import reset_read_models
from tests.support.waiting import wait_until
from tests.support.workload import submit_calls, workload_settings

QUIET = 6.0
WOKEN_WITHIN = 2.5
_LISTENING = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
)


def _listening(database_url: str) -> set[int]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return {row[0] for row in conn.execute(_LISTENING).fetchall()}


@pytest.fixture
def process(database_url: str, clean_database: str) -> Iterator[tuple[Container, set[int]]]:
    """A container with workers and read models running, and the LISTEN backends there were
    before it."""
    before = _listening(database_url)
    settings = workload_settings(database_url).model_copy(update={"poll_interval_seconds": QUIET})
    container = Container.build(settings)
    reset_read_models(container)
    container.start_workers()
    container.start_projections()
    try:
        yield container, before
    finally:
        container.close()


def _caught_up(container: Container) -> bool:
    return all(status.lag_events == 0 for status in container.read_models.status())


def test_a_process_with_workers_read_models_and_the_event_stream_listens_on_one_connection(
    process: tuple[Container, set[int]], database_url: str
) -> None:
    container, before = process

    async def scenario() -> set[int]:
        hub = EventHub(container.event_feed(), poll_seconds=QUIET)
        subscription = await hub.subscribe(StreamFilter("t1"), after=None)
        try:
            await asyncio.sleep(1.5)  # every channel subscribed to is listened to by now
            return await asyncio.to_thread(_listening, database_url)
        finally:
            subscription.close()
            await hub.aclose()

    listening = asyncio.run(scenario())
    assert listening - before == {container.notifications.backend_pid}


def test_after_its_connection_is_killed_the_listener_reconnects_and_wakes_every_consumer(
    process: tuple[Container, set[int]], database_url: str
) -> None:
    container, before = process
    old = wait_until(lambda: container.notifications.backend_pid)

    async def scenario() -> None:
        hub = EventHub(container.event_feed(), poll_seconds=QUIET)
        subscription = await hub.subscribe(StreamFilter("t1"), after=None)
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", (old,))
            await asyncio.to_thread(
                wait_until, lambda: container.notifications.backend_pid not in (None, old)
            )
            await asyncio.sleep(1.0)  # the reconnect's own wake-up is over: consumers wait
            await asyncio.to_thread(submit_calls, container, 1, tenant="t1")
            async with asyncio.timeout(WOKEN_WITHIN):
                seen = []
                while "ServiceCall.Started" not in seen:  # the stream's tail and the timer
                    event = await subscription.next(WOKEN_WITHIN)
                    if event is not None:
                        seen.append(event.type)
            await asyncio.to_thread(  # the read-model runners
                wait_until, lambda: _caught_up(container), WOKEN_WITHIN
            )
        finally:
            subscription.close()
            await hub.aclose()

    asyncio.run(scenario())
    assert _listening(database_url) - before == {container.notifications.backend_pid}


def test_a_process_that_only_submits_listens_to_nothing(
    database_url: str, clean_database: str
) -> None:
    """The API submits and reads but never waits for outbox messages: no LISTEN connection,
    so it is not woken by every submit's and outcome's notify."""
    container = Container.build(workload_settings(database_url))
    try:
        submit_calls(container, 3)
        container.outbox.claim("start", 1)
        assert container.notifications.backend_pid is None
        container.outbox.wait("start", 0)  # a claim loop's first wait starts the listener
        assert wait_until(lambda: container.notifications.backend_pid) is not None
    finally:
        container.close()
