"""Loading many aggregates at once: one query for a whole batch, not one per aggregate.

The events are decoded by the application's own mapper (so upcasting, compression and
encryption apply as usual) and folded with each event's ``mutate``, as the library's
repository does.
"""

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import StoredEvent


@runtime_checkable
class EventsOfMany(Protocol):
    def select_events_of(self, originator_ids: Sequence[UUID]) -> Sequence[StoredEvent]:
        """Every event of these aggregates, ordered by aggregate and version."""


def load_many(app: Application[UUID], ids: Iterable[UUID]) -> dict[UUID, Any]:
    """The current state of each aggregate found (missing ids are left out)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    recorder = app.recorder
    if not isinstance(recorder, EventsOfMany):
        return _one_by_one(app, wanted)
    aggregates: dict[UUID, Any] = {}
    for stored in recorder.select_events_of(wanted):
        event: Any = app.mapper.to_domain_event(stored)
        originator_id = UUID(str(stored.originator_id))
        aggregates[originator_id] = event.mutate(aggregates.get(originator_id))
    return aggregates


def _one_by_one(app: Application[UUID], ids: Sequence[UUID]) -> dict[UUID, Any]:
    found: dict[UUID, Any] = {}
    for aggregate_id in ids:
        try:
            found[aggregate_id] = app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            continue
    return found
