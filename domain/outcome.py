"""What one HTTP attempt produced, as the execution module reports it."""

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class ErrorKind(StrEnum):
    HTTP_ERROR = "http_error"
    TIMEOUT = "timeout"
    NETWORK = "network"
    CIRCUIT_OPEN = "circuit_open"
    REJECTED = "rejected"
    LOST = "lost"


@dataclass(frozen=True)
class AttemptResult:
    """The raw result of sending a request (from the HTTP port)."""

    duration_ms: float
    status_code: int | None = None
    headers: dict[str, str] | None = None
    body_snippet: str | None = None
    error_kind: ErrorKind | None = None
    message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error_kind is None and self.status_code is not None and is_success(
            self.status_code
        )

    def classified(self) -> "AttemptResult":
        """Non-2xx answers are failures of kind ``http_error``."""
        if self.error_kind is None and not self.succeeded:
            return AttemptResult(
                duration_ms=self.duration_ms,
                status_code=self.status_code,
                headers=self.headers,
                body_snippet=self.body_snippet,
                error_kind=ErrorKind.HTTP_ERROR,
                message=f"HTTP {self.status_code}",
            )
        return self


def is_success(status_code: int) -> bool:
    return 200 <= status_code < 300


@dataclass(frozen=True)
class AttemptOutcome:
    """An execution's terminal outcome, as the orchestration policy receives it."""

    execution_id: str
    attempt: int
    succeeded: bool
    duration_ms: float
    status_code: int | None = None
    error_kind: str | None = None
    message: str | None = None
    retry_after_seconds: float | None = None
    finished_at_epoch: float | None = None  # when the answer (or failure) came

    def finished_at(self, default: datetime) -> datetime:
        """When the attempt ended (so retry delays count from then), never after ``default``."""
        if self.finished_at_epoch is None:
            return default
        return min(default, datetime.fromtimestamp(self.finished_at_epoch, UTC))
