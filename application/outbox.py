"""The outbox port: messages between modules, written in the same transaction as events.

A message is work to do: ``start`` (timer: a due attempt) or ``execute`` (make the request);
an attempt's outcome is decided in the transaction that records it. Workers claim available
messages under a lease; the transaction that records the events a message caused also
deletes it (``OutboxChanges.consume``) and adds the messages those events cause
(``OutboxChanges.publish``). A worker that dies loses only its lease.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

START = "start"
EXECUTE = "execute"
KINDS = (START, EXECUTE)


@dataclass(frozen=True)
class OutboxMessage:
    kind: str
    tenant_id: str
    service_call_id: UUID
    attempt: int
    available_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    host: str = ""
    lease_seconds: float | None = None
    id: int | None = None
    claims: int = 0
    due_at: datetime | None = None


def still_leased(messages: Sequence[OutboxMessage], margin: float = 1.0) -> list[OutboxMessage]:
    """The claimed messages whose leases (``available_at`` after a claim) last at least
    ``margin`` seconds more: work a worker may still do itself (after a database outage, say)
    instead of leaving it for the lease to end."""
    limit = datetime.now(UTC) + timedelta(seconds=margin)
    return [m for m in messages if m.available_at > limit]


@dataclass(frozen=True)
class OutboxChanges:
    """Messages a transaction consumes and publishes, with its events (``TransactionEffects``)."""

    consume: Sequence[int] = ()
    publish: Sequence[OutboxMessage] = ()
    # the transaction ends attempts in flight (consumes ``execute`` messages): a timer held
    # back by a concurrency limit, in any worker process, looks again
    frees_slots: bool = False


class Outbox(Protocol):
    def claim(self, kind: str, limit: int, lookahead: float = 0.0) -> list[OutboxMessage]:
        """Lease up to ``limit`` messages of ``kind`` available within ``lookahead`` seconds
        (oldest due first); a lease runs from the later of now and the message's due time."""

    def release(self, messages: Sequence[OutboxMessage]) -> int:
        """Hand claimed messages back before their leases end (a worker stopping): available
        again now, or at their due time if it is ahead; how many were handed back."""

    def changed_since(self, versions: dict[UUID, int]) -> set[UUID]:
        """The aggregates among ``versions`` (id → version) with events recorded after it."""

    def seconds_until_next(self, kind: str) -> float | None:
        """Seconds until the next message of ``kind`` becomes available (None: none)."""

    def wait(self, kind: str, timeout: float, *, or_slot_freed: bool = False) -> None:
        """Block until a message of ``kind`` may be available, or ``timeout`` passes; with
        ``or_slot_freed``, also until some worker ends an attempt in flight."""

    def wake(self, kind: str) -> None:
        """End a ``wait`` for ``kind`` now (a loop that is stopping)."""
