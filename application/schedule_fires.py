"""A schedule's fires: the calls (or workflow runs) it submitted, newest first, read from its
own events.

Each ``Fired`` and ``Triggered`` event names the call it submitted (or, ``workflow_run``, the
run it started); their current statuses come from the calls and runs themselves (one query
for a page). Read page by page backwards
through the schedule's events, so a schedule with years of fires costs a page, not a replay.
"""

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from application.loading import load_many
from application.service_calls import ServiceCalls
from domain.schedule import Schedule

MAX_FIRES = 100
_EVENTS_PER_READ = 500  # events read at a time, newest first (skips, outcomes, ... between)


@dataclass(frozen=True)
class FireRecord:
    """One fire of a schedule: the call it submitted (or the workflow run it started) and
    why."""

    call_id: UUID | None  # None: the fire started a workflow run
    kind: str  # scheduled | catch_up | buffered | backfill | trigger
    nominal: datetime  # the nominal time (a trigger's: when it was triggered)
    due_at: datetime  # when its call was due (nominal + jitter, or later at the capped rate)
    fired_at: datetime  # when the fire was recorded
    idempotency_key: str
    local: datetime | None  # the wall time the spec matched (none for a trigger)
    dst_note: str | None
    version: int  # the schedule's version the fire made
    call_status: str | None = None  # the call's status now (None: not found, or a run)
    run_id: UUID | None = None  # the workflow run it started (None: a call)
    run_status: str | None = None  # the run's status now


@dataclass(frozen=True)
class FirePage:
    items: list[FireRecord]
    next_cursor: int | None  # pass as ``before`` for older fires


def fires_of(
    calls: ServiceCalls, schedule: Schedule, limit: int, before: int | None = None
) -> FirePage:
    """The schedule's newest ``limit`` fires (made at versions below ``before``, if given)."""
    limit = max(1, min(limit, MAX_FIRES))
    lte = schedule.version if before is None else min(before - 1, schedule.version)
    found: list[FireRecord] = []
    while lte >= 1 and len(found) < limit:
        events = list(
            calls.events.get(schedule.id, lte=lte, desc=True, limit=_EVENTS_PER_READ)
        )
        if not events:
            break
        for event in events:
            record = _fire(event)
            if record is not None:
                found.append(record)
                if len(found) == limit:
                    break
        lte = events[-1].originator_version - 1
    ids = [f.call_id or f.run_id for f in found]
    statuses = {
        fired_id: str(fired.status)
        for fired_id, fired in load_many(calls, [i for i in ids if i is not None]).items()
    }
    items = [
        replace(f, run_status=statuses.get(f.run_id)) if f.run_id is not None
        else replace(f, call_status=statuses.get(f.call_id) if f.call_id else None)
        for f in found
    ]
    more = len(found) == limit and found[-1].version > 1
    return FirePage(items, found[-1].version if more else None)


def _fire(event: Any) -> FireRecord | None:
    kind = type(event).__name__
    record = _fired(event, kind)
    if record is not None and getattr(event, "workflow_run", False):
        return replace(record, call_id=None, run_id=event.call_id)  # the id is the run's
    return record


def _fired(event: Any, kind: str) -> FireRecord | None:
    if kind == "Fired":
        return FireRecord(
            call_id=event.call_id,
            kind=_fired_kind(event),
            nominal=event.nominal,
            due_at=event.actual,
            fired_at=event.fired_at,
            idempotency_key=event.idempotency_key,
            local=event.local,
            dst_note=event.dst_note,
            version=event.originator_version,
        )
    if kind == "Triggered":
        return FireRecord(
            call_id=event.call_id,
            kind="trigger",
            nominal=event.at,
            due_at=event.at,
            fired_at=event.at,
            idempotency_key=event.idempotency_key,
            local=None,
            dst_note=None,
            version=event.originator_version,
        )
    return None


def _fired_kind(event: Any) -> str:
    if event.backfill:
        return "backfill"
    if event.from_buffer:
        return "buffered"
    return "catch_up" if event.catch_up else "scheduled"
