"""Loading many aggregates at once: one query for a whole batch, not one per aggregate.

The events are decoded by the application's own mapper (so upcasting, compression and
encryption apply as usual) and folded with each event's ``mutate``, as the library's
repository does.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, LRUCache
from eventsourcing.persistence import StoredEvent

from application.outbox import OutboxMessage


@runtime_checkable
class EventsOfMany(Protocol):
    def select_events_of(
        self, originator_ids: Sequence[UUID], after: Sequence[int] | None = None
    ) -> Sequence[StoredEvent]:
        """Every event of these aggregates (with ``after``: those after each one's version
        there), ordered by aggregate and version."""


@runtime_checkable
class LatestOfMany(EventsOfMany, Protocol):
    def select_latest_snapshots(self, originator_ids: Sequence[UUID]) -> Sequence[StoredEvent]:
        """The newest snapshot of each of these aggregates that has one."""


def load_many(app: Application[UUID], ids: Iterable[UUID]) -> dict[UUID, Any]:
    """The current state of each aggregate found (missing ids are left out)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    recorder = app.recorder
    if not isinstance(recorder, EventsOfMany):
        return _one_by_one(app, wanted)
    return fold_events(app, recorder.select_events_of(wanted))


def fold_events(app: Application[UUID], events: Iterable[StoredEvent]) -> dict[UUID, Any]:
    """The aggregates these stored events make (each aggregate's events in version order,
    from its first), as the library's repository folds them."""
    aggregates: dict[UUID, Any] = {}
    for stored in events:
        event: Any = app.mapper.to_domain_event(stored)
        originator_id = UUID(str(stored.originator_id))
        aggregates[originator_id] = event.mutate(aggregates.get(originator_id))
    return aggregates


def load_current(
    app: Application[UUID], ids: Iterable[UUID], cache: LRUCache[UUID, Any]
) -> dict[UUID, Any]:
    """The current state of each aggregate found, for aggregates with long histories
    (schedules), in two queries whatever the batch: those ``cache`` holds start from there,
    the others from their newest snapshot (the first query) or from nothing; then one query
    reads every one's newer events. What is found is cached as it is, not copied (a deep copy
    of a schedule cost more than the rest of its load): ``cache`` is the caller's own, and a
    caller that changes an aggregate and then fails to record it must evict it."""
    wanted = list(dict.fromkeys(ids))
    recorder = app.recorder
    if not isinstance(recorder, LatestOfMany):
        return _one_by_one(app, wanted)
    found: dict[UUID, Any] = {}
    for aggregate_id in wanted:
        try:
            found[aggregate_id] = cache.get(aggregate_id)
        except KeyError:
            continue
    uncached = [i for i in wanted if i not in found]
    if uncached and app.snapshots is not None:
        for stored in recorder.select_latest_snapshots(uncached):
            snapshot: Any = app.mapper.to_domain_event(stored)
            found[UUID(str(stored.originator_id))] = snapshot.mutate(None)
    after = [found[i].version if i in found else 0 for i in wanted]
    for stored in recorder.select_events_of(wanted, after=after):
        originator_id = UUID(str(stored.originator_id))
        event: Any = app.mapper.to_domain_event(stored)
        found[originator_id] = event.mutate(found.get(originator_id))
    for aggregate_id in uncached:
        if aggregate_id in found:
            cache.put(aggregate_id, found[aggregate_id])
    return found


def _one_by_one(app: Application[UUID], ids: Sequence[UUID]) -> dict[UUID, Any]:
    found: dict[UUID, Any] = {}
    for aggregate_id in ids:
        try:
            found[aggregate_id] = app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            continue
    return found


ByAggregate = dict[UUID, list[OutboxMessage]]


def handle_by_aggregate(
    messages: Sequence[OutboxMessage],
    loaded: LRUCache[UUID, Any],
    handle: Callable[[ByAggregate, list[int]], None],
) -> None:
    """A producer loop's batch (a schedule's or a workflow run's messages, each naming its
    aggregate as ``service_call_id``): grouped by aggregate and handed to ``handle`` with the
    ids to consume, in one go. If ``handle`` fails, the aggregates it may have changed but not
    recorded are dropped from ``loaded`` (the loop's own cache), to be read again."""
    by_aggregate: ByAggregate = defaultdict(list)
    for message in messages:
        by_aggregate[message.service_call_id].append(message)
    try:
        handle(by_aggregate, [m.id for m in messages if m.id is not None])
    except BaseException:
        for aggregate_id in by_aggregate:
            with suppress(KeyError):
                loaded.get(aggregate_id, evict=True)
        raise
