"""A schedule's history keeps growing (a few events per fire): every 50 events the
application snapshots it, and the snapshot, read back through the real event store, is the
schedule as its events make it; the schedule loop loads a batch of schedules from its cache,
bringing them up to date together."""

from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import LRUCache, project_aggregate
from eventsourcing.persistence import IntegrityError

import application.schedules as schedules_module
from application.clock import utcnow
from application.loading import load_current
from application.outbox import SCHEDULE, OutboxMessage
from application.schedules import CreateSchedule
from domain.schedule import Schedule
from domain.schedule_spec import ScheduleSpec
from infrastructure.container import Container
from tests.support.db_queries import rows

TENANT = "t-snap"


def _state(schedule: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(schedule).items() if k != "_pending_events"}


def _watch_event_reads(container: Container, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The versions each batch read of events starts after (the real query, watched)."""
    recorder: Any = container.service_calls.recorder
    select, asked = recorder.select_events_of, []

    def watched(ids: Any, after: Any = None) -> Any:
        asked.append(after)
        return select(ids, after)

    monkeypatch.setattr(recorder, "select_events_of", watched)
    return asked


def _create(container: Container) -> Schedule:
    return container.schedules.create(
        CreateSchedule(
            TENANT,
            "snap",
            {"request": {"method": "POST", "url": "https://example.com/x",
                         "headers": {"Authorization": "Bearer s3cret"}}},
            ScheduleSpec.from_dict({"cron": "0 9 * * MON#2", "timezone": "Europe/London",
                                    "overlap": "buffer_all"}),
        )
    ).schedule


def _every_second(container: Container) -> Schedule:
    return container.schedules.create(
        CreateSchedule(
            TENANT,
            "every-second",
            {"request": {"method": "POST", "url": "https://example.com/x"}},
            ScheduleSpec.from_dict({"interval_seconds": 1}),
        )
    ).schedule


def test_a_schedule_is_snapshotted_every_50_events(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedules = container.schedules
    schedule = _create(container)
    while schedules.get(TENANT, schedule.id).version < 101:
        schedules.pause(TENANT, schedule.id)
        schedules.resume(TENANT, schedule.id)

    app = container.service_calls
    assert app.snapshots is not None
    (snapshot,) = app.snapshots.get(schedule.id, desc=True, limit=1)
    assert snapshot.originator_version == 100
    restored: Schedule = snapshot.mutate(None)
    replayed = project_aggregate(None, app.events.get(schedule.id, lte=100))
    assert _state(restored) == _state(replayed)
    assert restored.describe() == replayed.describe()

    asked = _watch_event_reads(container, monkeypatch)
    (loaded,) = load_current(app, [schedule.id], LRUCache(10)).values()  # from the snapshot
    assert asked == [[100]]
    assert loaded.version == 101
    assert loaded.describe() == schedules.get(TENANT, schedule.id).describe()


def test_load_current_brings_cached_schedules_up_to_date(
    container: Container, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = container.service_calls
    stale, fresh = _create(container), _create(container)
    cache: LRUCache[UUID, Any] = LRUCache(10)
    cache.put(stale.id, app.repository.get(stale.id))  # loaded before, at version 1
    other = Container.build(settings)  # another process changes it
    try:
        other.schedules.pause(TENANT, stale.id)
        other.schedules.resume(TENANT, stale.id)
    finally:
        other.close()
    missing = uuid4()
    asked = _watch_event_reads(container, monkeypatch)

    found = load_current(app, [stale.id, fresh.id, missing, stale.id], cache)

    assert asked == [[1, 0, 0]]  # newer than cached (stale), all (no snapshot yet)

    assert set(found) == {stale.id, fresh.id}
    assert found[stale.id].version == 3
    assert found[stale.id].status == "active"
    assert found[fresh.id].describe() == container.schedules.get(TENANT, fresh.id).describe()
    assert cache.get(stale.id) is found[stale.id]  # brought up to date where it was cached
    assert cache.get(fresh.id) is found[fresh.id]
    with pytest.raises(KeyError):
        cache.get(missing)


def test_a_batch_that_fails_to_record_leaves_no_changed_schedule_loaded(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The schedule loop keeps the schedules it loads; a batch it changes but cannot record
    (a write conflict) must not leave them changed, or handling the batch again would see
    the wake-up as stale and never fire."""
    schedule = _every_second(container)
    wake_up = OutboxMessage(
        SCHEDULE, TENANT, schedule.id, 0, utcnow(), payload={"version": schedule.version}
    )
    real_record = schedules_module.record

    def conflicting(*args: Any) -> Any:
        raise IntegrityError("version taken")

    monkeypatch.setattr(schedules_module, "record", conflicting)
    with pytest.raises(IntegrityError):
        container.schedules.handle([wake_up])
    monkeypatch.setattr(schedules_module, "record", real_record)
    container.schedules.handle([wake_up])

    events = list(container.service_calls.events.get(schedule.id, gt=schedule.version))
    # fired (twice if the handling crossed into the next second's lookahead, under load)
    assert {type(e).__name__ for e in events} == {"Fired"}
    assert 1 <= len(events) <= 2


def _wake_ups(container: Container, schedule_id: UUID) -> list[Any]:
    sql = (
        "SELECT payload->'version' FROM duecall_outbox WHERE kind = %s AND service_call_id = %s"
        " AND NOT payload ? 'outcome' ORDER BY id"
    )
    return [r[0] for r in rows(container.database_url, sql, SCHEDULE, schedule_id)]


def test_a_fires_outcome_leaves_the_live_wake_up_in_place(container: Container) -> None:
    """A fire publishes the next wake-up; its call's outcome, which changes nothing about
    when the schedule is next due, records ``FireSucceeded`` and publishes none."""
    schedule = _every_second(container)
    assert _wake_ups(container, schedule.id) == [1]
    wake_up = OutboxMessage(SCHEDULE, TENANT, schedule.id, 0, utcnow(), payload={"version": 1})
    container.schedules.handle([wake_up])
    fired = container.schedules.get(TENANT, schedule.id)
    assert _wake_ups(container, schedule.id) == [1, 2]  # (handed in by hand: row 1 stays)
    (call_id,) = fired.in_flight
    outcome = {"outcome": {"call_id": str(call_id), "status": "succeeded"}}
    container.schedules.handle(
        [OutboxMessage(SCHEDULE, TENANT, schedule.id, 0, utcnow(), payload=outcome)]
    )

    after = container.schedules.get(TENANT, schedule.id)
    assert (after.version, after.succeeded, after.wake_version) == (3, 1, 2)
    assert _wake_ups(container, schedule.id) == [1, 2]  # no new one: version 2 is still live
