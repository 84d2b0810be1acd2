"""/v1/circuits: the tenant's circuit breakers, one per target host."""

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from application.circuit_admin import list_circuits, reset_circuit
from interfaces.api.dependencies import ContainerDep, TenantDep

router = APIRouter(prefix="/v1/circuits", tags=["circuits"])


class CircuitPublic(BaseModel):
    host: str
    state: str
    consecutive_failures: int
    open_until: datetime | None
    probe: str | None
    updated_at: datetime


class CircuitList(BaseModel):
    items: list[CircuitPublic]


@router.get("", response_model=CircuitList)
def get_circuits(container: ContainerDep, tenant: TenantDep) -> CircuitList:
    circuits = list_circuits(container.service_calls, container.circuit_registry, tenant)
    return CircuitList(items=[CircuitPublic.model_validate(c.describe()) for c in circuits])


@router.post("/{host}/reset", response_model=CircuitPublic)
def reset(host: str, container: ContainerDep, tenant: TenantDep) -> CircuitPublic:
    """Close the host's circuit now (held calls still wait for their due time)."""
    circuit = reset_circuit(container.service_calls, tenant, host)
    return CircuitPublic.model_validate(circuit.describe())
