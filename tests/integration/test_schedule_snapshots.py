"""A schedule's history keeps growing (a few events per fire): every 100 events the
application snapshots it, and the snapshot, read back through the real event store, is the
schedule as its events make it."""

from typing import Any

from eventsourcing.application import project_aggregate

from application.schedules import CreateSchedule
from domain.schedule import Schedule
from domain.schedule_spec import ScheduleSpec
from infrastructure.container import Container

TENANT = "t-snap"


def _state(schedule: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(schedule).items() if k != "_pending_events"}


def test_a_schedule_is_snapshotted_every_100_events(container: Container) -> None:
    schedules = container.schedules
    schedule = schedules.create(
        CreateSchedule(
            TENANT,
            "snap",
            {"request": {"method": "POST", "url": "https://example.com/x",
                         "headers": {"Authorization": "Bearer s3cret"}}},
            ScheduleSpec.from_dict({"cron": "0 9 * * MON#2", "timezone": "Europe/London",
                                    "overlap": "buffer_all"}),
        )
    ).schedule
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
