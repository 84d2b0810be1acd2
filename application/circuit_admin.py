"""Looking at and resetting circuit breakers (GET /v1/circuits, POST .../reset)."""

from typing import Protocol
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application

from application.clock import utcnow
from application.conflicts import retry_on_conflict
from application.outbox import record
from domain.circuit import Circuit, circuit_id_for
from domain.errors import DomainError


class CircuitNotFoundError(DomainError):
    def __init__(self, host: str) -> None:
        super().__init__(f"no circuit for host {host!r}")


class CircuitRegistry(Protocol):
    def circuit_ids(self, tenant_id: str) -> list[UUID]:
        """Ids of the tenant's circuits (one per host that has failed at least once)."""


def list_circuits(
    app: Application[UUID], registry: CircuitRegistry, tenant_id: str
) -> list[Circuit]:
    circuits: list[Circuit] = [app.repository.get(i) for i in registry.circuit_ids(tenant_id)]
    return sorted(circuits, key=lambda c: c.host)


def reset_circuit(app: Application[UUID], tenant_id: str, host: str) -> Circuit:
    """Close the host's circuit; a write conflict with a worker recording an outcome for the
    host is tried again from fresh state."""

    def once() -> Circuit:
        try:
            circuit: Circuit = app.repository.get(circuit_id_for(tenant_id, host))
        except AggregateNotFoundError:
            raise CircuitNotFoundError(host) from None
        circuit.reset(utcnow())
        record(app, [circuit])
        return circuit

    return retry_on_conflict(once, f"the circuit of {host!r}")
