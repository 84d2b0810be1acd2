"""The dashboard's schedule pages: ``/ui/schedules`` (the list) and ``/ui/schedules/{id}``.

Built as the call pages are (``ui.py``): the pages are shells without tenant data; their
script fetches the fragments under ``/ui/parts/schedules`` with the API key, and those are
rendered from the very functions behind ``/v1/schedules`` (tenant-scoped, secret header
values redacted). The dashboard has no action buttons for calls, so none for schedules
either: pause, resume and trigger are the API's and the CLI's.
"""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from domain.schedule_status import ScheduleStatus
from interfaces.api.dependencies import AuditDep, ContainerDep, TenantDep
from interfaces.api.routes.schedule_queries import search_schedules
from interfaces.api.routes.schedules import (
    ScheduleEventHistory,
    list_fires,
    preview_schedule,
    schedule_events,
)
from interfaces.api.schedule_schemas import SchedulePublic
from interfaces.api.ui import Describe, _page, _part, _when, described, templates
from projections.query import MAX_LIMIT

router = APIRouter(prefix="/ui", include_in_schema=False)
STATUSES = tuple(s.value for s in ScheduleStatus)
PREVIEW_COUNT = 10
RECENT_FIRES = 20
RECENT_EVENTS = 50  # a schedule's history grows with every fire: the page shows the newest
DST_NOTES = {
    "gap_shifted": "not on the clock (spring forward): fires the gap's length later",
    "gap_skipped": "not on the clock (spring forward): no fire (gap=skip)",
    "fold_first": "happens twice (fall back): the first",
    "fold_second": "happens twice (fall back): the second",
}
Payload = dict[str, Any]


def _zoned(value: datetime | str | None) -> str:
    """A time on its zone's clock, with the zone's abbreviation (``CEST``, ``+1030``)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return "" if value is None else f"{value:%Y-%m-%d %H:%M:%S} {value:%Z}"


templates.env.filters["zoned"] = _zoned
templates.env.globals["dst_notes"] = DST_NOTES


# -- what each of a schedule's events says, in words, with a timeline style ------------------


def _fired(p: Payload) -> tuple[str, str]:
    how = "backfill" if p.get("backfill") else "catch-up" if p.get("catch_up") else ""
    how = "from the buffer" if p.get("from_buffer") else how
    return f"fired {_when(p['nominal'])} {f'({how}) ' if how else ''}→ call", "green"


_EVENTS: dict[str, Describe] = {
    "Created": lambda p: (f"created {p['name']!r}, first fire {_when(p['next_nominal'])}", "bold"),
    "Updated": lambda p: (f"updated {p['name']!r}, next fire {_when(p['next_nominal'])}", "cyan"),
    "Fired": _fired,
    "Triggered": lambda p: ("triggered by hand → call", "green"),
    "Skipped": lambda p: (f"skipped {_when(p['nominal'])}: {p['reason']}", "yellow"),
    "Buffered": lambda p: (f"buffered {_when(p['nominal'])} (overlap)", "yellow"),
    "CaughtUp": lambda p: (
        f"{p['missed']} missed, {p['caught_up']} caught up (on_missed {p['on_missed']})",
        "yellow",
    ),
    "FireSucceeded": lambda p: ("its call succeeded", "green"),
    "FireFailed": lambda p: (f"its call failed ({p['consecutive_failures']} in a row)", "red"),
    "FireCancelled": lambda p: ("its call was cancelled", "dim"),
    "Paused": lambda p: (f"paused ({p['reason']})", "magenta"),
    "Resumed": lambda p: ("resumed", "magenta"),
    "Finished": lambda p: (f"finished: {p['reason']}", "bold"),
    "Deleted": lambda p: ("deleted", "bold red"),
}


# -- pages: shells without tenant data --------------------------------------------------


@router.get("/schedules", response_class=HTMLResponse)
def schedules_page(request: Request) -> HTMLResponse:
    return _page(request, "schedules.html", page="schedules", statuses=STATUSES)


@router.get("/schedules/{schedule_id}", response_class=HTMLResponse)
def schedule_page(request: Request, schedule_id: UUID) -> HTMLResponse:
    return _page(request, "schedule.html", page="schedule", schedule_id=str(schedule_id))


# -- fragments: tenant data, behind the API key -------------------------------------------


@router.get("/parts/schedules", response_class=HTMLResponse)
def schedules_part(
    request: Request,
    container: ContainerDep,
    tenant: TenantDep,
    status: Annotated[list[str] | None, Query()] = None,
    name: str | None = None,
    sort: Literal["-created", "next_fire"] = "-created",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 25,
    cursor: str | None = None,
    min_position: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    """A page of the schedules list (rows and the next cursor), from ``GET /v1/schedules``."""
    page = search_schedules(
        container,
        tenant,
        Response(),
        status=[s for s in status or () if s] or None,
        name=name or None,
        sort=sort,
        limit=limit,
        cursor=cursor or None,
        min_position=min_position,
    )
    return _part(request, "_schedules.html", {"page": page})


@router.get("/parts/schedules/{schedule_id}", response_class=HTMLResponse)
def schedule_part(
    request: Request,
    schedule_id: UUID,
    container: ContainerDep,
    tenant: TenantDep,
    audit: AuditDep,
) -> HTMLResponse:
    """A schedule (a deleted one too: its history stays readable), its next fire times, its
    recent fires and its newest events, read from its own events (never stale)."""
    schedule = container.schedules.get(tenant, schedule_id)  # 404: not this tenant's
    history = schedule_events(
        schedule_id, container, audit, tenant, format="json", limit=RECENT_EVENTS, sort="-version"
    )
    assert isinstance(history, ScheduleEventHistory)
    newest = history.model_dump(mode="json")["items"]
    context = {
        "schedule": SchedulePublic.model_validate(schedule.describe()),
        "preview": preview_schedule(schedule_id, container, tenant, count=PREVIEW_COUNT),
        "fires": list_fires(schedule_id, container, tenant, limit=RECENT_FIRES).items,
        "events": [described(e, _EVENTS) for e in newest],
        "event_count": schedule.version,  # one version per event: no count query
    }
    return _part(request, "_schedule.html", context)
