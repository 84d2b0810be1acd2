"""``GET /v1/events/stream``: the tenant's events as Server-Sent Events, as they are recorded.

Each message is ``id: <position>``, ``event: <type>`` and ``data: <one line of JSON>``: the
event as the history endpoint shows it (``public``: payload as recorded, secrets redacted) plus
``aggregate_type``, ``aggregate_id``, ``originator_version`` and ``service_call_id``. The
stream opens with a message holding only ``retry:`` and ``id:`` (the position it starts
after; EventSource dispatches nothing for it but remembers the id), so a client that
reconnects before any event came still resumes without a gap. A quiet stream sends
``: heartbeat`` every ``DUECALL_EVENT_STREAM_HEARTBEAT_SECONDS``; each heartbeat re-checks the
API key (a revoked key ends the stream). See application/event_stream.py for how one shared
tail serves every subscriber.

Not FastAPI's ``EventSourceResponse``/``ServerSentEvent``: its keep-alive is a fixed 15 s
``: ping`` (the module-private ``fastapi.sse._PING_INTERVAL``) that can neither follow the
setting above nor re-check the key, so this heartbeat loop would stay anyway; and it builds and
formats a pydantic ``ServerSentEvent`` per event per subscriber (~20 µs, through two extra tasks
per connection), where here an event fanned out to many subscribers is encoded once.
"""

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

import orjson
import structlog
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.exceptions import HTTPException

from application.authentication import Principal
from application.event_stream import (
    EventHub,
    StreamEnded,
    StreamEvent,
    StreamFilter,
    Subscription,
    streamed_types,
)
from domain.errors import InvalidRequestError
from infrastructure.container import Container
from infrastructure.database import DATABASE_UNAVAILABLE
from interfaces.api.dependencies import (
    ContainerDep,
    CredentialsDep,
    cached_or_off_loop,
    principal_for_key,
)
from interfaces.api.routes.audit import public

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["events"])
EVENT_STREAM = "text/event-stream"
STREAMED_TYPES = streamed_types()
MAX_POSITION = 2**63 - 1  # positions are bigints; one beyond the head starts at the head
RETRY_MS = 1000  # how long an EventSource waits before it reconnects
HEARTBEAT = b": heartbeat\n\n"


def hub_for(container: Container) -> EventHub:
    """The process's event hub (the API's lifespan keeps it in ``app.state.event_hub``)."""
    settings = container.settings
    return EventHub(
        container.event_feed(),
        poll_seconds=settings.poll_interval_seconds,
        queue_size=settings.event_stream_queue_size,
    )


@dataclass(frozen=True)
class StreamCaller:
    principal: Principal
    key: str


async def stream_caller(
    container: ContainerDep,
    credentials: CredentialsDep,
    access_token: Annotated[
        str | None,
        Query(description="The API key, for clients that cannot send an Authorization header "
              "(a browser's EventSource). Prefer the header: URLs end up in logs."),
    ] = None,
) -> StreamCaller:
    key = credentials.credentials if credentials else access_token
    how = "Authorization: Bearer <key> (or ?access_token=<key>)"
    principal = await cached_or_off_loop(principal_for_key, container, key, how)
    container.tracer.request_tenant(principal.tenant)
    assert key is not None
    return StreamCaller(principal, key)


def event_types(values: list[str] | None) -> frozenset[str]:
    """The ``type`` filter: repeated and/or comma-separated names, each a streamed type."""
    names = {name.strip() for value in values or [] for name in value.split(",")} - {""}
    unknown = sorted(names - STREAMED_TYPES)
    if unknown:
        known = ", ".join(sorted(STREAMED_TYPES))
        raise InvalidRequestError("type", f"unknown event type {unknown[0]!r} (one of: {known})")
    return frozenset(names)


def stream_data(event: StreamEvent) -> dict[str, Any]:
    """The ``data`` of an event's message."""
    recorded = event.recorded
    return {
        "position": recorded.position,
        "type": recorded.type,
        "aggregate_type": recorded.type.partition(".")[0],
        "aggregate_id": recorded.originator_id,
        "originator_version": recorded.originator_version,
        "service_call_id": event.service_call_id,
        **public(recorded),
    }


# An event fanned out to many subscribers is one object: encode it once (for as long as some
# subscriber still holds it). Used on the event loop's thread only.
_encoded: "weakref.WeakKeyDictionary[StreamEvent, bytes]" = weakref.WeakKeyDictionary()


def sse_message(event: StreamEvent) -> bytes:
    message = _encoded.get(event)
    if message is None:
        data = orjson.dumps(stream_data(event), option=orjson.OPT_UTC_Z, default=str)
        message = b"id: %d\nevent: %s\ndata: %s\n\n" % (
            event.position, event.type.encode(), data)
        _encoded[event] = message
    return message


async def _messages(
    subscription: Subscription, heartbeat: float, still_valid: Callable[[], Awaitable[bool]]
) -> AsyncIterator[bytes]:
    try:
        yield b"retry: %d\nid: %d\n\n" % (RETRY_MS, subscription.start)
        while True:
            event = await subscription.next(heartbeat)
            if event is not None:
                yield sse_message(event)
            elif await still_valid():
                yield HEARTBEAT
            else:
                return
    except StreamEnded:
        return  # overflow or shutdown: the client reconnects with Last-Event-ID
    except DATABASE_UNAVAILABLE as error:  # a catch-up read failed: the client reconnects
        log.warning("event_stream_read_failed", error=str(error))
    finally:
        subscription.close()


@router.get(
    "/events/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {EVENT_STREAM: {}},
                     "description": "Server-Sent Events: `id` position, `event` type, "
                                    "`data` JSON."}},
)
async def event_stream(
    request: Request,
    container: ContainerDep,
    caller: Annotated[StreamCaller, Depends(stream_caller)],
    call_id: Annotated[
        UUID | None,
        Query(description="Only this service call's events and its executions'."),
    ] = None,
    types: Annotated[
        list[str] | None,
        Query(alias="type", description="Only these event types, e.g. `ServiceCall.Succeeded` "
              "(repeat the parameter, or separate with commas)."),
    ] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_POSITION,
              description="Start after this position (`0`: from the first event; one beyond "
              "the log's head: from the head); default: only events recorded from now on."),
    ] = None,
    last_event_id: Annotated[
        int | None,
        Query(ge=0, le=MAX_POSITION, description="Resume after this position (as Last-Event-ID)."),
    ] = None,
    last_event_id_header: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, le=MAX_POSITION,
               description="Resume after this position: the `id` of the last event received."),
    ] = None,
) -> StreamingResponse:
    """The tenant's `ServiceCall`, `Execution`, `Circuit`, `Schedule` and `WorkflowRun`
    events as they are recorded. A reconnecting client sends `Last-Event-ID` (or
    `?last_event_id=`), which wins over `after`, and gets every event after it exactly once,
    in log order."""
    where = StreamFilter(caller.principal.tenant, call_id, event_types(types))
    resume = next(
        (p for p in (last_event_id_header, last_event_id, after) if p is not None), None
    )
    hub: EventHub = request.app.state.event_hub
    try:  # from now on: the shared tail must know where the log ends (the database is up)
        async with asyncio.timeout(container.settings.db_connect_timeout_seconds + 1):
            subscription = await hub.subscribe(where, resume)
    except (StreamEnded, TimeoutError) as error:
        raise HTTPException(503, "the event stream is unavailable; try again",
                            headers={"Retry-After": "1"}) from error

    async def still_valid() -> bool:
        authenticate = container.authenticator.authenticate
        return await cached_or_off_loop(authenticate, caller.key) is not None

    heartbeat = container.settings.event_stream_heartbeat_seconds
    return StreamingResponse(
        _messages(subscription, heartbeat, still_valid),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
