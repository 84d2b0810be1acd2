"""The dashboard at ``/ui``: server-rendered pages plus a little JavaScript.

The pages (``/ui``, ``/ui/calls/{id}``, ``/ui/stats``; the schedules' in ``ui_schedules.py``,
the workflow runs' in ``ui_workflows.py``) are static shells: they hold no tenant data and
need no key. Their script asks for an API key once (or takes it from ``#key=...``), keeps it
in the browser, and fetches with ``Authorization: Bearer <key>``:

- ``/ui/parts/...``: HTML fragments rendered here from the very functions behind the JSON API
  (the calls list, a call with its attempts and its timeline), tenant-scoped like ``/v1``;
- ``/v1/stats`` as JSON, drawn as SVG charts by the script;
- ``/v1/events/stream`` (Server-Sent Events) for live updates, polling when it is not there.
"""

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from interfaces.api.dependencies import AuditDep, ContainerDep, TenantDep
from interfaces.api.routes.audit import EventHistory, service_call_events
from interfaces.api.routes.queries import search_service_calls
from interfaces.api.routes.service_calls import get_service_call, list_executions
from interfaces.timeline import timeline
from projections.query import MAX_LIMIT

_HERE = Path(__file__).resolve().parent
STATIC_DIR = _HERE / "static"
templates = Jinja2Templates(directory=_HERE / "templates")

router = APIRouter(prefix="/ui", include_in_schema=False)
STATUSES = ("scheduled", "running", "paused", "succeeded", "failed", "cancelled")
_NO_STORE = {"Cache-Control": "no-store"}
# the pages run only their own script and style, talk only to this origin, are never framed
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _when(value: datetime | str | None) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SS`` (UTC, as the API gives it)."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


templates.env.filters["when"] = _when
templates.env.filters["ms"] = _ms
Describe = Callable[[dict[str, Any]], tuple[str, str]]  # a payload → (what, timeline style)


def described(event: dict[str, Any], events: Mapping[str, Describe]) -> dict[str, Any]:
    """An aggregate's event as the API gives it, with ``what`` and ``style`` for a timeline
    (from ``events``, by the event's name; an unknown one says its name) and ``call_id``."""
    kind = event["type"].partition(".")[2]
    describe = events.get(kind)
    what, style = describe(event["payload"]) if describe else (kind, "")
    return {**event, "what": what, "style": style, "call_id": event["payload"].get("call_id")}


def install(app: FastAPI) -> None:
    """Serve the dashboard's pages, fragments and static files."""
    from interfaces.api import ui_schedules, ui_workflows  # noqa: PLC0415  (they import this)

    app.include_router(router)
    app.include_router(ui_schedules.router)
    app.include_router(ui_workflows.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")


# -- pages: shells without tenant data --------------------------------------------------


def _page(request: Request, template: str, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, template, context, headers=_PAGE_HEADERS)


def _part(request: Request, template: str, context: dict[str, Any]) -> HTMLResponse:
    """A fragment: tenant data, never kept in a cache."""
    return templates.TemplateResponse(request, template, context, headers=_NO_STORE)


@router.get("", response_class=HTMLResponse)
def calls_page(request: Request) -> HTMLResponse:
    return _page(request, "calls.html", page="calls", statuses=STATUSES)


@router.get("/calls/{service_call_id}", response_class=HTMLResponse)
def call_page(request: Request, service_call_id: UUID) -> HTMLResponse:
    return _page(request, "call.html", page="call", call_id=str(service_call_id))


@router.get("/stats", response_class=HTMLResponse)
def stats_page(request: Request) -> HTMLResponse:
    return _page(request, "stats.html", page="stats")


# -- fragments: tenant data, behind the API key -------------------------------------------


@router.get("/parts/calls", response_class=HTMLResponse)
def calls_part(
    request: Request,
    container: ContainerDep,
    tenant: TenantDep,
    status: Annotated[list[str] | None, Query()] = None,
    name: str | None = None,
    tag: str | None = None,
    host: str | None = None,
    correlation_id: str | None = None,
    sort: Literal["-created", "due"] = "-created",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 25,
    cursor: str | None = None,
    min_position: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    """A page of the calls list (rows and the next cursor), from ``GET /v1/service-calls``."""
    page = search_service_calls(
        container,
        tenant,
        Response(),
        status=[s for s in status or () if s] or None,
        name=name or None,
        tag=tag or None,
        host=host or None,
        correlation_id=correlation_id or None,
        sort=sort,
        limit=limit,
        cursor=cursor or None,
        min_position=min_position,
    )
    return _part(request, "_calls.html", {"page": page})


@router.get("/parts/calls/{service_call_id}", response_class=HTMLResponse)
def call_part(
    request: Request,
    service_call_id: UUID,
    container: ContainerDep,
    tenant: TenantDep,
    audit: AuditDep,
) -> HTMLResponse:
    """A call, its attempts and its timeline (``interfaces.timeline``, as ``duecall replay``)."""
    call = get_service_call(service_call_id, container, tenant, audit)
    attempts = list_executions(service_call_id, container, tenant).items
    events = service_call_events(service_call_id, audit, tenant, format="json")
    assert isinstance(events, EventHistory)
    recorded = events.model_dump(mode="json")["items"]
    lines = timeline(recorded)
    context = {
        "call": call,
        "attempts": sorted(attempts, key=lambda a: a.attempt, reverse=True),
        "entries": list(zip(lines, recorded, strict=True)),
    }
    return _part(request, "_call.html", context)
