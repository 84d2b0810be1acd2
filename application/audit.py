"""Audit: a call's recorded history, a tenant's event stream, and a call's state as it was.

History and exports come from the event log as recorded (the ``EventLog`` port); a past state
is rebuilt from the call's events by the repository, never taken from a read model.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, cast
from uuid import UUID

from application.service_calls import ServiceCalls
from domain.errors import InvalidRequestError, ServiceCallNotFoundError
from domain.ids import execution_id_for
from domain.service_call import ServiceCall


class PastStateNotFoundError(ServiceCallNotFoundError):
    """The call had no such state: not submitted yet at that time, or no such version."""

    def __init__(self, service_call_id: UUID, what: str) -> None:
        super().__init__(service_call_id)
        self.args = (f"service call {service_call_id} {what}",)


@dataclass(frozen=True)
class RecordedEvent:
    """One event as recorded: where it is in the log, and its state as stored."""

    position: int
    originator_id: UUID
    originator_version: int
    topic: str
    timestamp: datetime | None  # the event's own time (set when it happened)
    recorded_at: datetime | None  # the database's clock when it was inserted
    schema_version: int  # the event class's version when it was recorded
    payload: dict[str, Any]
    hash: str | None  # its link in the aggregate's hash chain (hex)

    @property
    def type(self) -> str:
        return self.topic.removeprefix("duecall:")


@dataclass(frozen=True)
class TimeWindow:
    """``start <= recorded_at < end``; either side open when None."""

    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        if self.start and self.end and self.end < self.start:
            raise InvalidRequestError("to", "is before from")


@dataclass(frozen=True)
class VersionPage:
    """A keyset page of one aggregate's events: up to ``limit`` of them after version
    ``cursor``, oldest first; ``newest_first``: before it, newest first (None: from the end)."""

    limit: int
    cursor: int | None = None
    newest_first: bool = False


@dataclass(frozen=True)
class EventPage:
    items: list[RecordedEvent]
    next_cursor: int | None  # the last item's version when more follow it


class EventLog(Protocol):
    def events_of(self, originator_ids: Sequence[UUID]) -> list[RecordedEvent]:
        """Every event of these aggregates, in log order."""
        ...

    def page_of(self, originator_id: UUID, page: VersionPage) -> list[RecordedEvent]:
        """One aggregate's events in the page, in its order (a bounded read)."""
        ...

    def tenant_stream(
        self, tenant_id: str, after: int, window: TimeWindow
    ) -> Iterator[RecordedEvent]:
        """A tenant's events after a log position, in log order, read page by page."""
        ...


class AuditTrail:
    def __init__(self, calls: ServiceCalls, log: EventLog) -> None:
        self.calls = calls
        self.log = log

    def history(self, tenant_id: str, call_id: UUID) -> list[RecordedEvent]:
        """The call's events and its executions', in the order they were recorded."""
        call = self.calls.get_call(tenant_id, call_id)
        executions = (execution_id_for(call.id, n) for n in range(1, call.attempt + 1))
        return self.log.events_of([call.id, *executions])

    def page(self, aggregate_id: UUID, page: VersionPage) -> EventPage:
        """A page of an aggregate's events; one more is read to know whether more follow."""
        events = self.log.page_of(aggregate_id, replace(page, limit=page.limit + 1))
        items = events[: page.limit]
        more = len(events) > page.limit
        return EventPage(items, items[-1].originator_version if more else None)

    def export(self, tenant_id: str, after: int, window: TimeWindow) -> Iterator[RecordedEvent]:
        return self.log.tenant_stream(tenant_id, after, window)

    def call_at(
        self,
        tenant_id: str,
        call_id: UUID,
        *,
        at: datetime | None = None,
        version: int | None = None,
    ) -> ServiceCall:
        """The call as it was at a time, or at a version, rebuilt from its events; with both,
        that version as it was known at that time (not found if it came later)."""
        latest = self.calls.get_call(tenant_id, call_id)
        if version is not None and version > latest.version:
            raise PastStateNotFoundError(call_id, f"has no version {version} (the latest is "
                                                  f"{latest.version})")
        if at is not None:
            version_then = self._version_at(call_id, at, latest)
            if version is not None and version > version_then:
                raise PastStateNotFoundError(call_id, f"had no version {version} yet at "
                                                      f"{at.isoformat()}")
            version = version or version_then
        past: ServiceCall = self.calls.repository.get(call_id, version=version or latest.version)
        return past

    def _version_at(self, call_id: UUID, at: datetime, latest: ServiceCall) -> int:
        """The version of the call's last event at or before ``at``."""
        version = None
        for event in self.calls.repository.event_store.get(call_id, lte=latest.version):
            if cast(ServiceCall.Event, event).timestamp > at:
                break
            version = event.originator_version
        if version is None:
            raise PastStateNotFoundError(call_id, f"did not exist yet at {at.isoformat()}")
        return version
