"""The Circuit aggregate: a breaker per (tenant, target host).

closed ──(N consecutive failures)──► open ──(open period over)──► half-open: one probe
  ▲                                   ▲                                 │
  └────────────── probe succeeded ────┼─────────── probe failed ────────┘ (reopened)

While open, due attempts for the host are held (rescheduled to the half-open time without
spending an attempt). Only failures that say "the host is unwell" count: timeouts, network
errors and 5xx answers. An attempt the outbound guard refused (``rejected``) never reached the
host, so it says nothing either way. State changes are events, so a call's history can say why
it waited.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.outcome import AttemptOutcome

_NAMESPACE = UUID("0b5e7c3a-2f4d-4a8e-9b1c-7d6e5f4a3b2c")


@lru_cache(maxsize=4096)  # asked several times for each start and outcome; uuid5 hashes
def circuit_id_for(tenant_id: str, host: str) -> UUID:
    return uuid5(_NAMESPACE, f"{tenant_id}|{host.lower()}")


def says_nothing_about_host(error_kind: str | None) -> bool:
    """The attempt never reached the host (duecall refused to send it)."""
    return error_kind == "rejected"


def counts_against_host(error_kind: str | None, status_code: int | None) -> bool:
    if error_kind in ("timeout", "network"):
        return True
    return status_code is not None and status_code >= 500


class Circuit(Aggregate):
    TOPIC = "duecall:Circuit"

    class Event(Aggregate.Event):
        TOPIC = "duecall:Circuit.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "duecall:Circuit.Created"

    @event("Registered", topic="duecall:Circuit.Registered")
    def __init__(self, id: UUID, tenant_id: str, host: str) -> None:
        self.tenant_id = tenant_id
        self.host = host
        self.state = "closed"
        self.failures = 0
        self.open_until: datetime | None = None
        self.probe: str | None = None

    @classmethod
    def register(cls, tenant_id: str, host: str) -> "Circuit":
        return cls(id=circuit_id_for(tenant_id, host), tenant_id=tenant_id, host=host)

    def hold_until(self, now: datetime, probe_wait: float) -> datetime | None:
        """When a held attempt should try again; None if it may go (or be the probe)."""
        if self.state == "closed":
            return None
        assert self.open_until is not None
        if now < self.open_until:
            return self.open_until
        if self.probe is None:
            return None
        return now + timedelta(seconds=probe_wait)

    def start_probe(self, probe: str, now: datetime) -> None:
        if self.state != "closed" and self.probe is None:
            self._probe_started(probe=probe, started_at=now)

    def record(
        self, probe: str, failed: bool, threshold: int, open_seconds: float, now: datetime
    ) -> None:
        """Count an attempt's outcome (``probe`` is its "call:attempt" key)."""
        if not failed:
            if self.state != "closed" or self.failures:
                self._close(closed_at=now)
            return
        if self.probe == probe or (self.state == "closed" and self.failures + 1 >= threshold):
            self._open(
                failures=self.failures + 1,
                open_until=now + timedelta(seconds=open_seconds),
                opened_at=now,
            )
        elif self.state == "closed":
            self._count_failure(failures=self.failures + 1)

    def reset(self, now: datetime) -> None:
        if self.state != "closed" or self.failures:
            self._close(closed_at=now)

    @event("FailureCounted", topic="duecall:Circuit.FailureCounted")
    def _count_failure(self, failures: int) -> None:
        self.failures = failures

    @event("Opened", topic="duecall:Circuit.Opened")
    def _open(self, failures: int, open_until: datetime, opened_at: datetime) -> None:
        self.state = "open"
        self.failures = failures
        self.open_until = open_until
        self.probe = None

    @event("ProbeStarted", topic="duecall:Circuit.ProbeStarted")
    def _probe_started(self, probe: str, started_at: datetime) -> None:
        self.state = "half_open"
        self.probe = probe

    @event("Closed", topic="duecall:Circuit.Closed")
    def _close(self, closed_at: datetime) -> None:
        self.state = "closed"
        self.failures = 0
        self.open_until = None
        self.probe = None

    def log_context(self) -> dict[str, str]:
        return {"tenant_id": self.tenant_id, "host": self.host}

    def describe(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "state": self.state,
            "consecutive_failures": self.failures,
            "open_until": self.open_until,
            "probe": self.probe,
            "updated_at": self.modified_on,
        }


@dataclass(frozen=True)
class CircuitOptions:
    failure_threshold: int = 5
    open_seconds: float = 30.0
    probe_wait_seconds: float = 5.0


class CircuitBoard:
    """The circuits one batch of starts or outcomes touches: each found once (``find``: the
    circuit as recorded, or None), changed in memory, saved with the batch."""

    def __init__(self, find: Callable[[UUID], Circuit | None], options: CircuitOptions) -> None:
        self._find = find
        self._options = options
        self._circuits: dict[UUID, Circuit | None] = {}
        self.registered: list[Circuit] = []  # created by this batch

    @property
    def touched(self) -> Iterable[Circuit]:
        return [c for c in self._circuits.values() if c is not None]

    def gate(
        self, tenant_id: str, host: str, call_id: UUID, attempt: int, now: datetime
    ) -> datetime | None:
        """None if the attempt may start now (maybe as the probe); else when to try again."""
        circuit = self._get(tenant_id, host)
        if circuit is None:
            return None
        until = circuit.hold_until(now, self._options.probe_wait_seconds)
        if until is None:
            circuit.start_probe(f"{call_id}:{attempt}", now)
        return until

    def record(
        self,
        tenant_id: str,
        host: str,
        call_id: UUID,
        outcome: AttemptOutcome,
        now: datetime,
    ) -> None:
        """Count an attempt's outcome for or against its host."""
        failed = not outcome.succeeded and counts_against_host(
            outcome.error_kind, outcome.status_code
        )
        circuit = self._get(tenant_id, host)
        probe = f"{call_id}:{outcome.attempt}"
        if says_nothing_about_host(outcome.error_kind) and (
            circuit is None or circuit.probe != probe
        ):
            return  # neither a failure nor a success: the count stays as it was
        if circuit is None:
            if not failed:
                return
            circuit = Circuit.register(tenant_id, host)
            self._circuits[circuit.id] = circuit
            self.registered.append(circuit)
        circuit.record(  # a refused probe closes it: the calls it held meet the guard too
            probe,
            failed,
            self._options.failure_threshold,
            self._options.open_seconds,
            now,
        )

    def _get(self, tenant_id: str, host: str) -> Circuit | None:
        circuit_id = circuit_id_for(tenant_id, host)
        if circuit_id not in self._circuits:
            self._circuits[circuit_id] = self._find(circuit_id)
        return self._circuits[circuit_id]
