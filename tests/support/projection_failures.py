"""Calls for read-model failure tests: submitted through the application (no API validation),
and one whose Submitted event the service_calls read model cannot store."""

import re
from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID, uuid4

from eventsourcing.persistence import StoredEvent
from psycopg import Cursor
from psycopg.rows import DictRow

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.request import RequestSpec
from infrastructure.container import Container
from projections.runner import LogEvent, Projection
from tests.support.db_queries import rows
from tests.support.workload import FAST_RETRIES


def submit(
    container: Container,
    tenant: str,
    *,
    name: str = "alpha",
    tags: Sequence[str] = ("workload",),
    correlation_id: str | None = None,
    due_in: timedelta = timedelta(hours=1),
) -> UUID:
    command = SubmitServiceCall(
        tenant_id=tenant,
        name=name,
        request=RequestSpec("POST", "http://a.example/ok", timeout_seconds=5),
        due_at=utcnow() + due_in,
        tags=list(tags),
        correlation_id=correlation_id,
        retry_policy=FAST_RETRIES,
    )
    call, _ = container.service_calls.submit(command)
    return call.id


def submit_unfoldable(container: Container, tenant: str) -> UUID:
    """A call whose Submitted has a ``due_at`` that is no time ("soon"): the event store takes
    it, the service_calls table refuses it (SQLSTATE 22007). A copy of a real call's Submitted
    (the application would not record it)."""
    model = submit(container, tenant)
    recorder = container.service_calls.recorder
    submitted = next(e for e in recorder.select_events(model) if e.originator_version == 1)
    state, replaced = re.subn(rb'"due_at":\{[^}]*\}', b'"due_at":"soon"', submitted.state)
    assert replaced == 1
    bad = uuid4()
    recorder.insert_events([StoredEvent(bad, 1, submitted.topic, state)])
    return bad


def position_of(database_url: str, call: UUID) -> int:
    """The log position of the call's first event."""
    found = rows(database_url, "SELECT min(notification_id) FROM duecall_events "
                               "WHERE originator_id = %s", call)
    return int(found[0][0])


class Refusing:
    """A projection that raises ``ValueError`` on the Submitted of ``refused`` (while
    ``broken``); fixing it is setting ``broken`` to False."""

    def __init__(self, inner: Projection, refused: UUID) -> None:
        self.inner, self.refused, self.broken = inner, refused, True
        self.name, self.topics = inner.name, inner.topics
        self.tables, self.migrations = inner.tables, inner.migrations

    def fold(self, curs: Cursor[DictRow], events: Sequence[LogEvent]) -> None:
        if self.broken and any(
            (r.event.originator_id, r.event.originator_version) == (self.refused, 1) for r in events
        ):
            raise ValueError(f"cannot fold the events of {self.refused}")
        self.inner.fold(curs, events)
