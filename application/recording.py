"""Saving aggregates with their outbox changes, and one log line per state change."""

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from application.outbox import OutboxChanges

log = structlog.get_logger("duecall.events")


def save_with_outbox(
    app: Application[UUID],
    aggregates: Iterable[Aggregate],
    changes: OutboxChanges,
    **extra: Any,
) -> None:
    """Record the aggregates' new events and the outbox changes in one transaction."""
    pending = [(aggregate, e) for aggregate in aggregates for e in aggregate.collect_events()]
    if not pending and not changes.consume and not changes.publish:
        return
    app.save(*(e for _, e in pending), outbox=changes, **extra)
    for aggregate, recorded in pending:
        log.info(
            type(recorded).__qualname__,
            version=recorded.originator_version,
            **_ids(aggregate),
        )


def _ids(aggregate: Any) -> dict[str, str]:
    ids = {"tenant_id": aggregate.tenant_id}
    if hasattr(aggregate, "service_call_id"):
        ids["service_call_id"] = str(aggregate.service_call_id)
        ids["execution_id"] = str(aggregate.id)
    else:
        ids["service_call_id"] = str(aggregate.id)
    return ids
