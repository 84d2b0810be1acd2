"""Audit: a call's recorded events, and a tenant's event stream as NDJSON.

Events are shown as recorded (state decoded, not upcast: ``schema_version`` says which shape),
with secrets redacted on the way out.
"""

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from application.audit import RecordedEvent, TimeWindow
from domain.redaction import redact_payload
from interfaces.api.dependencies import AuditDep, TenantDep
from interfaces.api.fields import AwareDateTime

router = APIRouter(prefix="/v1", tags=["audit"])
NDJSON = "application/x-ndjson"


class RecordedEventPublic(BaseModel):
    position: int = Field(description="Position in the notification log (total order).")
    type: str = Field(examples=["ServiceCall.Scheduled"])
    topic: str
    originator_id: UUID
    version: int = Field(description="The aggregate's version this event made.")
    timestamp: datetime | None = Field(description="When the event happened.")
    recorded_at: datetime | None = Field(description="When the database recorded it.")
    schema_version: int = Field(description="The event class version it was recorded with.")
    hash: str | None = Field(description="Its link in the aggregate's sha256 hash chain.")
    payload: dict[str, Any] = Field(description="The state as recorded (secrets redacted).")


class EventHistory(BaseModel):
    service_call_id: UUID
    items: list[RecordedEventPublic]


def public(event: RecordedEvent) -> dict[str, Any]:
    return {
        "position": event.position,
        "type": event.type,
        "topic": event.topic,
        "originator_id": event.originator_id,
        "version": event.originator_version,
        "timestamp": event.timestamp,
        "recorded_at": event.recorded_at,
        "schema_version": event.schema_version,
        "hash": event.hash,
        "payload": redact_payload(event.payload),
    }


def _ndjson(events: Iterable[RecordedEvent], lines_per_chunk: int = 200) -> Iterator[bytes]:
    """One JSON object per line, sent in chunks of a few hundred lines."""
    chunk: list[bytes] = []
    for event in events:
        chunk.append(orjson.dumps(public(event), option=orjson.OPT_UTC_Z) + b"\n")
        if len(chunk) >= lines_per_chunk:
            yield b"".join(chunk)
            chunk.clear()
    if chunk:
        yield b"".join(chunk)


@router.get(
    "/service-calls/{service_call_id}/events",
    response_model=EventHistory,
    responses={200: {"content": {NDJSON: {}}}},
)
def service_call_events(
    service_call_id: UUID,
    audit: AuditDep,
    tenant: TenantDep,
    format: Literal["json", "ndjson"] = "json",
) -> EventHistory | StreamingResponse:
    """Every event of the call and of its executions, in the order they were recorded."""
    events = audit.history(tenant, service_call_id)
    if format == "ndjson":
        return StreamingResponse(_ndjson(events), media_type=NDJSON)
    items = [RecordedEventPublic.model_validate(public(e)) for e in events]
    return EventHistory(service_call_id=service_call_id, items=items)


@router.get("/audit/export", response_class=StreamingResponse,
            responses={200: {"content": {NDJSON: {}}}})
def export_events(
    audit: AuditDep,
    tenant: TenantDep,
    start: Annotated[AwareDateTime | None, Query(alias="from")] = None,
    end: Annotated[AwareDateTime | None, Query(alias="to")] = None,
    after: Annotated[int, Query(ge=0, description="Resume after this position.")] = 0,
) -> StreamingResponse:
    """The tenant's events recorded in [from, to), one JSON object per line, in log order;
    streamed page by page (constant memory). Resume an interrupted export with
    ``after=<position of the last line received>``."""
    events = audit.export(tenant, after, TimeWindow(start, end))
    return StreamingResponse(_ndjson(events), media_type=NDJSON)
