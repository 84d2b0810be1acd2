"""Loading many aggregates at once: one query for a whole batch, not one per aggregate.

The events are decoded by the application's own mapper (so upcasting, compression and
encryption apply as usual) and folded with each event's ``mutate``, as the library's
repository does.
"""

import copy
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import StoredEvent


@runtime_checkable
class EventsOfMany(Protocol):
    def select_events_of(
        self, originator_ids: Sequence[UUID], after: Sequence[int] | None = None
    ) -> Sequence[StoredEvent]:
        """Every event of these aggregates (with ``after``: those after each one's version
        there), ordered by aggregate and version."""


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


def load_current(app: Application[UUID], ids: Iterable[UUID]) -> dict[UUID, Any]:
    """The current state of each aggregate found, for aggregates with long histories
    (schedules): those the repository's cache holds are brought up to date together, with one
    query for their newer events (``Repository.get`` makes one per aggregate); the others are
    read one by one through the repository, from their newest snapshot, and so cached."""
    wanted = list(dict.fromkeys(ids))
    cache, recorder = app.repository.cache, app.recorder
    if cache is None or not isinstance(recorder, EventsOfMany):
        return _one_by_one(app, wanted)
    found: dict[UUID, Any] = {}
    for aggregate_id in wanted:
        try:
            found[aggregate_id] = copy.deepcopy(cache.get(aggregate_id))
        except KeyError:
            continue
    if found:
        ids_cached = list(found)
        versions = [found[i].version for i in ids_cached]
        for stored in recorder.select_events_of(ids_cached, after=versions):
            originator_id = UUID(str(stored.originator_id))
            event: Any = app.mapper.to_domain_event(stored)
            found[originator_id] = event.mutate(found[originator_id])
        for aggregate_id in ids_cached:  # the cache keeps a copy: callers change theirs
            cache.put(aggregate_id, copy.deepcopy(found[aggregate_id]))
    found.update(_one_by_one(app, [i for i in wanted if i not in found]))
    return found


def _one_by_one(app: Application[UUID], ids: Sequence[UUID]) -> dict[UUID, Any]:
    found: dict[UUID, Any] = {}
    for aggregate_id in ids:
        try:
            found[aggregate_id] = app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            continue
    return found
