"""Saving aggregates with what else their transaction writes, and one log line per change."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import structlog
from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import Recording

from application.idempotency import IdempotencyRecord
from application.outbox import OutboxChanges

log = structlog.get_logger("duecall.events")


class Recordable(Protocol):
    def collect_events(self) -> Sequence[Any]: ...

    def log_context(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class NewCircuit:
    """A circuit registered by the transaction (listed by ``GET /v1/circuits``)."""

    tenant_id: str
    host: str
    circuit_id: UUID


@dataclass(frozen=True)
class TransactionEffects:
    """What a save writes besides its events, in their transaction (the event recorder's
    ``_insert_events`` hook receives it as ``effects``): outbox changes, the Idempotency-Keys
    of new calls, and new circuits and tenants for their registries."""

    outbox: OutboxChanges = field(default_factory=OutboxChanges)
    idempotency: Sequence[IdempotencyRecord] = ()
    circuits: Sequence[NewCircuit] = ()
    tenants: Sequence[str] = ()

    def __bool__(self) -> bool:
        outbox = self.outbox
        return bool(outbox.consume or outbox.publish or self.idempotency or self.circuits
                    or self.tenants)


NO_EFFECTS = TransactionEffects()


def record(
    app: Application[UUID],
    aggregates: Iterable[Recordable],
    effects: TransactionEffects = NO_EFFECTS,
) -> int | None:
    """Record the aggregates' new events and their effects in one transaction; the log
    position (notification id) of the last event recorded, if any."""
    pending = [(aggregate, e) for aggregate in aggregates for e in aggregate.collect_events()]
    if not pending and not effects:
        return None
    recordings = _save(app, [e for _, e in pending], effects=effects)
    for aggregate, recorded in pending:
        log.info(
            type(recorded).__qualname__,
            version=recorded.originator_version,
            **aggregate.log_context(),
        )
    return max((r.notification.id for r in recordings), default=None)


def _save(
    app: Application[UUID], events: list[Any], effects: TransactionEffects
) -> list[Recording[UUID]]:
    """``app.save(*events, effects=effects)``, step for step, without ``collect_events``' runtime
    Protocol checks (``isinstance(event, DomainEventProtocol)`` per event: a large share of a
    batch submit's time). Events passed to ``save`` go to the processing event as they are,
    with no aggregates, exactly as here (tests/unit/test_library_contracts.py pins the steps)."""
    processing: ProcessingEvent[UUID] = ProcessingEvent()
    processing.events.extend(events)
    processing.saved_kwargs["effects"] = effects
    recordings = app._record(processing)
    app._take_snapshots(processing)
    app._notify(recordings)
    app.notify(processing.events)  # deprecated, still called by save()
    return recordings
