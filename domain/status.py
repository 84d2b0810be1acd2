from enum import StrEnum


class Status(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})
CANCELLABLE = frozenset({Status.SCHEDULED, Status.PAUSED, Status.RUNNING})
PAUSABLE = frozenset({Status.SCHEDULED})
