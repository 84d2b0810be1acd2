"""/healthz (the process is up) and /readyz (the database answers; read models' lag)."""

from dataclasses import asdict
from typing import Any

import psycopg
from eventsourcing.persistence import PersistenceError
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from infrastructure.database import ping
from interfaces.api.dependencies import ContainerDep
from interfaces.api.problems import problem

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(container: ContainerDep) -> JSONResponse | dict[str, Any]:
    """Ready when the database answers (else 503), with each read model's position, the log's
    head and the lag in events and seconds. The lag is information, not a condition: a read
    model that is behind does not make the service unready (its answers say how fresh they are).
    """
    if not ping(container.database_url):
        return problem(503, "Not ready", "the database is not reachable")
    try:
        projections = [asdict(status) for status in container.read_models.status()]
    except (psycopg.Error, PersistenceError):
        return problem(503, "Not ready", "the database is not reachable")
    return {"status": "ready", "database": "ok", "projections": projections}
