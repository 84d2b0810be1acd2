"""A resume position beyond the log's head starts at the head, so the stream delivers what is
recorded next instead of waiting for a position the log may never reach."""

import asyncio

import pytest

from application.event_stream import EventHub, StreamFilter
from infrastructure.container import Container
from tests.support.workload import submit_calls


@pytest.mark.parametrize("beyond", [1, 10**6, 2**63 - 1])
def test_a_position_beyond_the_head_starts_at_the_head_and_delivers(
    hub_container: Container, beyond: int
) -> None:
    submit_calls(hub_container, 2, tenant="t1")
    feed = hub_container.event_feed()
    head = feed.head()
    hub = EventHub(feed, poll_seconds=0.2)

    async def scenario() -> tuple[int, int]:
        subscription = await hub.subscribe(StreamFilter("t1"), after=head + beyond)
        try:
            await asyncio.to_thread(submit_calls, hub_container, 1, tenant="t1")
            async with asyncio.timeout(10):
                while (event := await subscription.next(1.0)) is None:
                    pass
            return subscription.start, event.position
        finally:
            subscription.close()
            await hub.aclose()

    start, first = asyncio.run(scenario())
    assert start == head
    assert first > head
