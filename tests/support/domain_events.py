"""Builders for the domain tests: an aggregate's pending events, their names, a rebuild.

eventsourcing types ``Aggregate.collect_events()`` as ``Sequence[CanMutateAggregate[UUID]]``
(any aggregate's events, read-only); the tests add, rebuild and name the events of one
aggregate type, so ``collect`` returns a list of that type's events and checks that it is.
"""

from collections.abc import Sequence
from functools import reduce
from typing import Any, TypeVar, cast, overload

from domain.execution import Execution
from domain.service_call import ServiceCall


@overload
def collect(aggregate: ServiceCall) -> list[ServiceCall.Event]: ...
@overload
def collect(aggregate: Execution) -> list[Execution.Event]: ...
def collect(
    aggregate: ServiceCall | Execution,
) -> list[ServiceCall.Event] | list[Execution.Event]:
    """``aggregate.collect_events()`` (its pending events, which it then forgets) as a list."""
    events: list[object] = list(aggregate.collect_events())
    event_type = type(aggregate).Event
    strangers = [e for e in events if not isinstance(e, event_type)]
    assert not strangers, f"not {event_type.__qualname__}: {strangers}"
    if isinstance(aggregate, ServiceCall):
        return cast(list[ServiceCall.Event], events)
    return cast(list[Execution.Event], events)


def names(events: Sequence[object]) -> list[str]:
    """The events' class names, in order (``["Submitted", "Started"]``)."""
    return [type(e).__name__ for e in events]


A = TypeVar("A", ServiceCall, Execution)


def rebuild(kind: type[A], events: Sequence[Any]) -> A:
    """The aggregate of type ``kind`` that replaying ``events`` from nothing gives."""
    rebuilt = reduce(lambda aggregate, event: event.mutate(aggregate), events, None)
    assert isinstance(rebuilt, kind)
    return rebuilt
