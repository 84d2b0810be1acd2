"""A schedule's statuses and reasons, its transition error and what a fire asks for."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from domain.errors import InvalidRequestError, InvalidTransitionError
from domain.text import check_text

MAX_NAME_LENGTH = 200


class ScheduleStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    FINISHED = "finished"  # no nominal time is left (end_at, max_runs, its last cron year)
    DELETED = "deleted"


class FireOutcome(StrEnum):
    """A fire's call's terminal status, as its outcome message reports it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class PauseReason(StrEnum):
    CLIENT = "client"
    FAILURES = "failures"  # pause_after_failures failed fires in a row


class FinishReason(StrEnum):
    MAX_RUNS = "max_runs"
    END_AT = "end_at"
    EXHAUSTED = "exhausted"  # its cron's year field has no year left


class ScheduleTransitionError(InvalidTransitionError):
    """A command not allowed in the schedule's status (an ``InvalidTransitionError``)."""

    def __init__(self, command: str, status: str) -> None:
        super().__init__(command, status)
        self.args = (f"cannot {command} a schedule that is {status}",)


@dataclass(frozen=True)
class FireOrder:
    """A call to submit (``workflow_run``: a workflow run to start, ``call_id`` its id),
    due at ``due_at`` with ``idempotency_key``, after cancelling ``cancel_call_ids`` (overlap
    cancel_other: calls, or runs)."""

    call_id: UUID
    nominal: datetime
    due_at: datetime
    idempotency_key: str
    cancel_call_ids: tuple[UUID, ...] = ()
    workflow_run: bool = False


def check_schedule_name(name: object) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidRequestError("name", f"must be 1 to {MAX_NAME_LENGTH} characters")
    check_text("name", name)
    return name
