"""The live event stream: a tenant's events as they are recorded, for many subscribers at once.

One shared **tail** per process follows the notification log (the ``EventFeed`` port: batched
reads, woken by the events table's LISTEN/NOTIFY channel or a short poll) and fans each event
out to the bounded queue of every subscriber of its tenant whose filters match. Subscribers
never poll the database; the tail starts with the first subscriber and stops when the last
one leaves (or on ``aclose``).

A subscriber that resumes from a position (``after``: an SSE client's ``Last-Event-ID``)
first catches up with its own paged, tenant-scoped reads; once a read comes back short (it
reached the head) it joins the fan-out at the tail's position and reads on until it has
passed that position. Everything it has read is delivered before anything from its queue,
and a queued event at or before what it has read is skipped, so it sees every event after
``after`` exactly once, in log order. A subscriber whose queue overflows (it does not keep
up) is ended; it reconnects from its last position and catches up again by reading.

Streamed: ``ServiceCall``, ``Execution``, ``Circuit``, ``Schedule`` and ``WorkflowRun`` events
(tenant-scoped through the tenant recorded with every event). ``Tenant`` and ``TenantSettings``
events are never streamed: a tenant's keys and signing secrets are administration, not activity.

One module over 300 lines on purpose: the tail, the subscribers and the hand-over between
catching up and the fan-out only make sense together (the exactly-once argument above).
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

import structlog
from eventsourcing.domain import Aggregate
from prometheus_client import Counter, Gauge

from application.audit import RecordedEvent
from application.supervision import Backoff
from domain.circuit import Circuit
from domain.execution import Execution
from domain.schedule import Schedule
from domain.service_call import ServiceCall
from domain.workflow_run import WorkflowRun

log = structlog.get_logger(__name__)

STREAMED_AGGREGATES: tuple[type[Aggregate], ...] = (
    ServiceCall, Execution, Circuit, Schedule, WorkflowRun
)
TAIL_BATCH = 500  # events the tail reads at once
CATCH_UP_PAGE = 500  # events a resuming subscriber reads at once

TAILS_STARTED = Counter(
    "duecall_event_stream_tails_started", "Shared tails of the event log started (one at a time)."
)
TAILS_RUNNING = Gauge("duecall_event_stream_tails_running", "Shared tails running now.")
FEED_READS = Counter(
    "duecall_event_stream_reads",
    "Reads of the event log for the live stream: by the shared tail, or by a subscriber "
    "catching up from an older position.",
    ["reader"],
)
SUBSCRIBERS = Gauge("duecall_event_stream_subscribers", "Live-stream subscribers connected now.")
ENDED = Counter(
    "duecall_event_stream_subscribers_ended",
    "Live-stream subscribers ended by the server: overflow (fell too far behind) or shutdown.",
    ["reason"],
)


def streamed_types() -> frozenset[str]:
    """The event types the stream carries (``ServiceCall.Succeeded``, ...): each aggregate's
    event classes but ``Event`` and, where another event creates the aggregate (a call's
    ``Submitted``, an execution's ``Started``), ``Created``."""
    types: set[str] = set()
    for aggregate in STREAMED_AGGREGATES:
        events = {
            name: value for name, value in vars(aggregate).items()
            if isinstance(value, type) and issubclass(value, Aggregate.Event) and name != "Event"
        }
        creators = [n for n, v in events.items() if issubclass(v, Aggregate.Created)]
        if len(creators) > 1:
            events.pop("Created", None)
        types.update(f"{aggregate.__name__}.{name}" for name in events)
    return frozenset(types)


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per event
class StreamEvent:                   # read, shared by every subscriber it is fanned out to
    """A recorded event with its tenant and the service call it is about (when known)."""

    recorded: RecordedEvent
    tenant_id: str
    service_call_id: UUID | None  # the call itself, or an execution's call; None: a circuit's,
    # a schedule's or a workflow run's event

    @property
    def position(self) -> int:
        return self.recorded.position

    @property
    def type(self) -> str:
        return self.recorded.type


@dataclass(frozen=True)
class FeedPage:
    """What one read of the log found: the streamed events (others are left out), and the
    position through which the read is complete (the next read starts after it)."""

    events: list[StreamEvent]
    through: int
    more: bool  # the read stopped at its limit: more may follow at once


class EventFeed(Protocol):
    """The notification log, read for the live stream (infrastructure implements it)."""

    def head(self) -> int:
        """The position of the last event recorded (0 when there is none)."""
        ...

    def read_after(self, position: int, limit: int, tenant_id: str | None = None) -> FeedPage:
        """Up to ``limit`` events recorded after ``position``, in log order (only this
        tenant's with ``tenant_id``)."""
        ...

    async def wait_for_more(self, timeout: float) -> None:
        """Return when new events may have been recorded, or after ``timeout`` seconds."""
        ...

    async def aclose(self) -> None:
        """Stop listening."""
        ...


@dataclass(frozen=True)
class StreamFilter:
    tenant_id: str
    service_call_id: UUID | None = None
    types: frozenset[str] = frozenset()  # empty: every streamed type

    def matches(self, event: StreamEvent) -> bool:
        return (
            event.tenant_id == self.tenant_id
            and (self.service_call_id is None or event.service_call_id == self.service_call_id)
            and (not self.types or event.type in self.types)
        )


class StreamEnded(Exception):
    """The server ended the subscription: ``overflow`` or ``shutdown``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the event stream was ended by the server ({reason})")
        self.reason = reason


class Subscription:
    """One subscriber: ``await next(timeout)`` until done, then ``close()``."""

    def __init__(
        self, hub: "EventHub", where: StreamFilter, after: int | None, queue_size: int
    ) -> None:
        self._hub = hub
        self.filter = where
        self._from_now = after is None
        self.start = after or 0  # every event after this position will be delivered
        self._read = self.start  # catch-up reads are complete through this position
        self._delivered = self.start
        self._live_from: int | None = None  # the tail's position when this joined the fan-out
        self._backlog: deque[StreamEvent] = deque()
        self._queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue(queue_size)
        self._ended: str | None = None

    async def next(self, timeout: float) -> StreamEvent | None:
        """The next event, in log order; None when none came within ``timeout`` seconds."""
        while True:
            if self._ended:
                raise StreamEnded(self._ended)
            if self._backlog:
                event = self._backlog.popleft()
                self._delivered = event.position
                return event
            if self._live_from is None or self._read < self._live_from:
                await self._catch_up()
                continue
            try:
                async with asyncio.timeout(timeout):
                    queued = await self._queue.get()
            except TimeoutError:
                return None
            if queued is not None and queued.position > max(self._read, self._delivered):
                self._delivered = queued.position
                return queued

    def close(self) -> None:
        """Leave the fan-out (synchronous: safe in a cancelled task's ``finally``)."""
        self._hub._leave(self)

    # -- the hub's side -------------------------------------------------------------------

    def join(self, live_from: int) -> None:
        self._live_from = live_from
        if self._from_now:
            self.start = self._read = self._delivered = live_from

    @property
    def ended(self) -> str | None:
        return self._ended

    def offer(self, event: StreamEvent) -> bool:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    def end(self, reason: str) -> None:
        self._ended = reason
        self._backlog.clear()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)  # wakes a waiting next()

    async def _catch_up(self) -> None:
        page = await self._hub.read(self._read, self.filter.tenant_id)
        self._backlog.extend(e for e in page.events if self.filter.matches(e))
        self._read = max(self._read, page.through)
        if self._live_from is None and not page.more:
            self._live_from = await self._hub.join(self)


class EventHub:
    """The shared tail of the log and its subscribers (one per API process)."""

    def __init__(
        self,
        feed: EventFeed,
        *,
        poll_seconds: float = 1.0,
        queue_size: int = 1000,
        batch_size: int = TAIL_BATCH,
        page_size: int = CATCH_UP_PAGE,
    ) -> None:
        self._feed = feed
        self._poll = poll_seconds
        self._queue_size = queue_size
        self._batch = batch_size
        self._page = page_size
        self._open: set[Subscription] = set()  # every open subscription (keeps the tail up)
        self._fan_out: dict[str, set[Subscription]] = {}  # tenant → subscriptions joined
        self._position: int | None = None  # the tail's: everything through it is fanned out
        self._tail: asyncio.Task[None] | None = None
        self._tail_ready: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._open)

    async def subscribe(self, where: StreamFilter, after: int | None) -> Subscription:
        """A subscription to the events after ``after`` (None: from now on). A position
        beyond the log's head (a client's id from another log, or made up) starts at the
        head: the events recorded from now on, not those after a position the log may
        never reach."""
        if self._closed:
            raise StreamEnded("shutdown")
        self._loop = asyncio.get_running_loop()
        if after is not None and after > (self._position or 0):
            after = min(after, await asyncio.to_thread(self._feed.head))
        subscription = Subscription(self, where, after, self._queue_size)
        self._open.add(subscription)
        SUBSCRIBERS.set(len(self._open))
        if after is None:
            try:
                await self.join(subscription)
            except BaseException:
                subscription.close()
                raise
        return subscription

    async def join(self, subscription: Subscription) -> int:
        """Add the subscription to the fan-out; the tail's position then (it gets every
        event after it)."""
        while True:
            await self._wait_for_tail()
            if subscription not in self._open:  # ended meanwhile
                raise StreamEnded(subscription.ended or "shutdown")
            if self._position is not None:
                break
        # No await between reading the position and joining: the tail cannot move in between.
        self._fan_out.setdefault(subscription.filter.tenant_id, set()).add(subscription)
        subscription.join(self._position)
        return self._position

    async def read(self, after: int, tenant_id: str) -> FeedPage:
        """A catch-up read of one subscriber (paged, tenant-scoped)."""
        FEED_READS.labels("catch_up").inc()
        return await asyncio.to_thread(self._feed.read_after, after, self._page, tenant_id)

    def _leave(self, subscription: Subscription) -> None:
        self._open.discard(subscription)
        joined = self._fan_out.get(subscription.filter.tenant_id)
        if joined is not None:
            joined.discard(subscription)
            if not joined:
                del self._fan_out[subscription.filter.tenant_id]
        SUBSCRIBERS.set(len(self._open))

    def _end(self, subscription: Subscription, reason: str) -> None:
        ENDED.labels(reason).inc()
        self._leave(subscription)
        subscription.end(reason)

    def end_all(self) -> None:
        """End every subscription and refuse new ones (on the hub's event loop)."""
        self._closed = True
        for subscription in list(self._open):
            self._end(subscription, "shutdown")

    def shutting_down(self) -> None:
        """Thread-safe (and signal-safe) ``end_all``: the server is about to stop, and waits
        for open responses to finish first."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.end_all)

    async def aclose(self) -> None:
        self.end_all()
        if self._tail is not None:
            self._tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tail
        await self._feed.aclose()

    # -- the tail -------------------------------------------------------------------------

    async def _wait_for_tail(self) -> None:
        if self._tail is None or self._tail.done():
            self._tail_ready = asyncio.Event()
            self._position = None
            self._tail = asyncio.create_task(self._follow(self._tail_ready), name="event-tail")
        assert self._tail_ready is not None
        await self._tail_ready.wait()

    async def _follow(self, ready: asyncio.Event) -> None:
        TAILS_STARTED.inc()
        TAILS_RUNNING.inc()
        backoff = Backoff()
        try:
            while self._open:
                try:
                    if self._position is None:
                        FEED_READS.labels("tail").inc()
                        self._position = await asyncio.to_thread(self._feed.head)
                        ready.set()
                        continue
                    FEED_READS.labels("tail").inc()
                    page = await asyncio.to_thread(
                        self._feed.read_after, self._position, self._batch
                    )
                    backoff.reset()
                except Exception as error:  # the database is away: keep trying
                    wait = backoff.next()
                    log.warning("event_stream_read_failed", error=str(error), retry_in=wait)
                    await asyncio.sleep(wait)
                    continue
                self._deliver(page.events)
                self._position = max(self._position, page.through)
                if not page.more and self._open:
                    await self._feed.wait_for_more(self._poll)
        finally:
            TAILS_RUNNING.dec()
            if self._tail is asyncio.current_task():
                self._tail, self._position = None, None
                ready.set()  # a joiner still waiting finds no tail and starts one

    def _deliver(self, events: Iterable[StreamEvent]) -> None:
        for event in events:
            for subscription in list(self._fan_out.get(event.tenant_id, ())):
                if subscription.filter.matches(event) and not subscription.offer(event):
                    log.info("event_stream_subscriber_overflow", tenant_id=event.tenant_id,
                             position=event.position)
                    self._end(subscription, "overflow")
