"""/healthz (the process is up) and /readyz (the database answers)."""

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
def readyz(container: ContainerDep) -> JSONResponse | dict[str, str]:
    if not ping(container.database_url):
        return problem(503, "Not ready", "the database is not reachable")
    return {"status": "ready"}
