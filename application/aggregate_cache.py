"""Long-lived, often-updated aggregates kept in memory and caught up, not replayed.

A host's circuit is updated by most outcomes for that host, for as long as a tenant calls it:
it collects thousands of events. Loading it from scratch for every batch of outcomes replays
all of them, and when several workers record outcomes at once their transactions conflict on
it and each retry loads it again. This cache keeps the last version read and reads only the
events recorded since: one short query, a few events folded.

It is safe with any number of processes: the cache is only a starting point, every read
catches up from the event store, and a stale copy is caught at save time by optimistic
concurrency like any other (the save conflicts and is retried from fresh state). Callers get
their own copy, so a failed save never leaves changed state in the cache.
"""

import copy
import threading
from collections import OrderedDict
from typing import Any
from uuid import UUID
from weakref import WeakKeyDictionary

from eventsourcing.application import AggregateNotFoundError, Application

MAX_CACHED = 10_000

_caches: "WeakKeyDictionary[Application[UUID], CatchUpCache]" = WeakKeyDictionary()
_caches_lock = threading.Lock()


class CatchUpCache:
    def __init__(self, app: Application[UUID], max_size: int = MAX_CACHED) -> None:
        self._app = app
        self._max_size = max_size
        self._cached: OrderedDict[UUID, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, aggregate_id: UUID) -> Any | None:
        """The aggregate as recorded now (a copy of its own for the caller), or None."""
        with self._lock:
            cached = self._cached.get(aggregate_id)
            cached = copy.deepcopy(cached) if cached is not None else None
        if cached is None:
            try:
                aggregate: Any = self._app.repository.get(aggregate_id)
            except AggregateNotFoundError:
                return None
        else:
            aggregate = cached
            for stored in self._app.recorder.select_events(aggregate_id, gt=aggregate.version):
                event: Any = self._app.mapper.to_domain_event(stored)
                aggregate = event.mutate(aggregate)
        with self._lock:
            self._cached[aggregate_id] = copy.deepcopy(aggregate)
            self._cached.move_to_end(aggregate_id)
            while len(self._cached) > self._max_size:
                self._cached.popitem(last=False)
        return aggregate


def catch_up_cache(app: Application[UUID]) -> CatchUpCache:
    """The application's cache (one per application object)."""
    with _caches_lock:
        cache = _caches.get(app)
        if cache is None:
            cache = _caches[app] = CatchUpCache(app)
        return cache
