"""A schedule's recorded events of one kind, for the schedule tests that run it for real."""

from typing import Any

from domain.schedule import Schedule
from infrastructure.container import Container


def recorded(container: Container, schedule: Schedule, kind: str) -> list[Any]:
    """The schedule's recorded events of ``kind`` (``Fired``, ``Skipped``, ...), oldest first."""
    return [
        e for e in container.service_calls.events.get(schedule.id)
        if type(e).__qualname__ == f"Schedule.{kind}"
    ]
