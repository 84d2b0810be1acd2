"""The live stream's hub and feed against a real PostgreSQL: tenant-scoped reads, catch-up in
pages then live without a gap or a duplicate, and a slow subscriber ended then resumed."""

import asyncio
import threading

import pytest

from application.event_stream import (
    EventHub,
    StreamEnded,
    StreamEvent,
    StreamFilter,
    Subscription,
    streamed_types,
)
from infrastructure.container import Container
from infrastructure.event_feed import PostgresEventFeed
from tests.support.workload import run_until_idle, submit_calls


def _feed(container: Container) -> PostgresEventFeed:
    return container.event_feed()


def _tenant_positions(container: Container, tenant: str) -> list[int]:
    page = _feed(container).read_after(0, 100_000, tenant)
    return [e.position for e in page.events]


async def _take(subscription: Subscription, count: int, timeout: float = 10.0) -> list[int]:
    positions: list[int] = []
    async with asyncio.timeout(timeout):
        while len(positions) < count:
            event = await subscription.next(1.0)
            if event is not None:
                positions.append(event.position)
    return positions


async def _until_ended(subscription: Subscription) -> None:
    async with asyncio.timeout(10):
        while True:
            await subscription.next(0.2)


def test_feed_reads_streamed_events_with_tenant_and_call(hub_container: Container) -> None:
    ours = submit_calls(hub_container, 3, tenant="t1", behaviours=("ok", "flaky"))
    submit_calls(hub_container, 2, tenant="t2")
    hub_container.tenants.create("t3")  # Tenant.* events: never streamed
    run_until_idle(hub_container)
    feed = _feed(hub_container)

    page = feed.read_after(0, 10_000, "t1")
    assert not page.more
    assert page.through == feed.head()
    assert {e.tenant_id for e in page.events} == {"t1"}
    calls = {e.service_call_id for e in page.events if not e.type.startswith("Circuit.")}
    assert calls == set(ours)  # an execution's events name its call too
    assert [e.position for e in page.events] == sorted(e.position for e in page.events)
    types = {e.type for e in page.events}
    assert {"ServiceCall.Submitted", "Execution.Started", "Execution.Failed",
            "Execution.Succeeded", "ServiceCall.Succeeded"} <= types
    assert types <= streamed_types()
    everything = feed.read_after(0, 10_000)
    assert {e.tenant_id for e in everything.events} == {"t1", "t2"}
    assert not any(e.type.startswith("Tenant") for e in everything.events)

    first = feed.read_after(0, 2, "t1")  # a full page: more may follow, through its last row
    assert first.more
    assert first.through == first.events[-1].position


def test_resume_catches_up_in_pages_then_live_exactly_once(hub_container: Container) -> None:
    submit_calls(hub_container, 5, tenant="t1")
    submit_calls(hub_container, 5, tenant="t2")
    feed = _feed(hub_container)
    hub = EventHub(feed, poll_seconds=0.2, page_size=3)

    async def scenario() -> list[int]:
        subscription = await hub.subscribe(StreamFilter("t1"), after=0)
        try:
            early = await _take(subscription, 4)  # from the catch-up pages
            # recorded while this subscriber is still reading old pages:
            writer = threading.Thread(target=submit_calls, args=(hub_container, 4),
                                      kwargs={"tenant": "t1"})
            writer.start()
            await asyncio.to_thread(writer.join)
            rest = await _take(subscription, 5 + 4 - 4)  # one event per submit
            assert await subscription.next(0.5) is None  # nothing more, nothing twice
            return early + rest
        finally:
            subscription.close()
            await hub.aclose()

    positions = asyncio.run(scenario())
    assert positions == _tenant_positions(hub_container, "t1")


def test_a_slow_subscriber_is_ended_and_resumes_from_its_last_position(
    hub_container: Container,
) -> None:
    hub = EventHub(_feed(hub_container), poll_seconds=0.2, queue_size=3)

    async def scenario() -> tuple[int, list[int]]:
        slow = await hub.subscribe(StreamFilter("t1"), after=None)
        start = slow.start
        await asyncio.to_thread(submit_calls, hub_container, 12, tenant="t1")
        with pytest.raises(StreamEnded) as ended:
            await _until_ended(slow)
        assert ended.value.reason == "overflow"
        slow.close()
        again = await hub.subscribe(StreamFilter("t1"), after=start)
        try:
            return start, await _take(again, 12)
        finally:
            again.close()
            await hub.aclose()

    start, positions = asyncio.run(scenario())
    assert positions == [p for p in _tenant_positions(hub_container, "t1") if p > start]


def test_filters_and_shutdown(hub_container: Container) -> None:
    calls = submit_calls(hub_container, 3, tenant="t1")
    hub = EventHub(_feed(hub_container), poll_seconds=0.2)
    where = StreamFilter("t1", calls[1], frozenset({"ServiceCall.Submitted"}))

    async def scenario() -> list[StreamEvent]:
        subscription = await hub.subscribe(where, after=0)
        got = [await subscription.next(5.0)]
        assert await subscription.next(0.3) is None
        hub.end_all()
        with pytest.raises(StreamEnded):
            await subscription.next(1.0)
        with pytest.raises(StreamEnded):
            await hub.subscribe(where, after=None)
        await hub.aclose()
        return [e for e in got if e is not None]

    (event,) = asyncio.run(scenario())
    assert (event.type, event.service_call_id) == ("ServiceCall.Submitted", calls[1])
