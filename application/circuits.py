"""Circuit breakers in the orchestration flow: hold attempts to unwell hosts, count outcomes."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.application import Application

from application.aggregate_cache import catch_up_cache
from application.recording import NewCircuit
from domain.circuit import Circuit, circuit_id_for, counts_against_host, says_nothing_about_host
from domain.outcome import AttemptOutcome
from domain.service_call import ServiceCall


@dataclass(frozen=True)
class CircuitOptions:
    failure_threshold: int = 5
    open_seconds: float = 30.0
    probe_wait_seconds: float = 5.0


class CircuitBoard:
    """The circuits one batch touches, loaded once, saved with the batch."""

    def __init__(self, app: Application[UUID], options: CircuitOptions) -> None:
        self._app = app
        self._options = options
        self._cache = catch_up_cache(app)  # a circuit's history grows with every outcome
        self._circuits: dict[UUID, Circuit | None] = {}
        self._registered: list[Circuit] = []

    @property
    def touched(self) -> Iterable[Circuit]:
        return [c for c in self._circuits.values() if c is not None]

    @property
    def registered(self) -> list[NewCircuit]:
        """The circuits this batch created, for the registry (``GET /v1/circuits``)."""
        return [NewCircuit(c.tenant_id, c.host, c.id) for c in self._registered]

    def gate(self, call: ServiceCall, attempt: int, now: datetime) -> datetime | None:
        """None if the attempt may start now (maybe as the probe); else when to try again."""
        circuit = self._get(call.tenant_id, call.request.host)
        if circuit is None:
            return None
        until = circuit.hold_until(now, self._options.probe_wait_seconds)
        if until is None:
            circuit.start_probe(f"{call.id}:{attempt}", now)
        return until

    def record(
        self, tenant_id: str, host: str, call_id: UUID, outcome: AttemptOutcome, now: datetime
    ) -> None:
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
            self._registered.append(circuit)
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
            self._circuits[circuit_id] = self._cache.get(circuit_id)
        return self._circuits[circuit_id]
