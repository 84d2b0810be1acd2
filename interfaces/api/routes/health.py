"""/healthz (the process is up) and /readyz (the database answers; no read model stuck)."""

from dataclasses import asdict
from typing import Any

import psycopg
from eventsourcing.persistence import PersistenceError
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from infrastructure.database import ping
from interfaces.api.dependencies import ContainerDep
from interfaces.api.problems import problem
from projections.freshness import unready_reasons

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(container: ContainerDep) -> JSONResponse | dict[str, Any]:
    """Ready when the database answers and no read model is stuck: not one has events it could
    not fold (unresolved projection failures), and none is further behind than
    ``readiness_max_lag_seconds``. Else 503, with each read model's position, the log's head,
    the lag in events and seconds, and its failures."""
    if not ping(container.database_url):
        return problem(503, "Not ready", "the database is not reachable")
    try:
        statuses = container.read_models.status()
    except (psycopg.Error, PersistenceError):
        return problem(503, "Not ready", "the database is not reachable")
    projections = [asdict(status) for status in statuses]
    reasons = unready_reasons(statuses, container.settings.readiness_max_lag_seconds)
    if reasons:
        return problem(503, "Not ready", "; ".join(reasons), database="ok",
                       projections=projections)
    return {"status": "ready", "database": "ok", "projections": projections}
