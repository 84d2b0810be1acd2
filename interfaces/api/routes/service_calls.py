"""/v1/service-calls: submit a call, read it, and cancel, pause, resume or retry it."""

import hashlib
from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request, Response

from application.clock import utcnow
from application.commands import SubmitServiceCall
from application.tenant_defaults import TenantDefaults
from domain.errors import InvalidRequestError
from domain.headers import check_header_size
from domain.request import check_body_size
from domain.service_call import ServiceCall
from infrastructure.container import Container
from interfaces.api.dependencies import AuditDep, ContainerDep, TenantDep, cached_or_off_loop
from interfaces.api.fields import AwareDateTime
from interfaces.api.schemas import (
    CancelRequest,
    ExecutionList,
    ExecutionPublic,
    IdText,
    RetryRequest,
    ServiceCallBatchCreate,
    ServiceCallBatchResult,
    ServiceCallBatchResults,
    ServiceCallCreate,
    ServiceCallPublic,
)

router = APIRouter(prefix="/v1/service-calls", tags=["service calls"])
IdempotencyKeyHeader = Annotated[IdText | None, Header()]


def _public(call: ServiceCall) -> ServiceCallPublic:
    return ServiceCallPublic.model_validate(call.describe())


def _command(
    body: ServiceCallCreate,
    tenant: str,
    key: str | None,
    container: Container,
    *,
    cached_only: bool = False,
) -> SubmitServiceCall:
    """The submit command, validated (limits included) before anything is recorded.
    ``cached_only``: raise ``NotCachedError`` rather than read the tenant's defaults."""
    defaults: TenantDefaults = container.tenant_defaults
    overrides = body.retry_policy.model_dump(exclude_unset=True) if body.retry_policy else None
    retry_policy = defaults.policy_for_call(tenant, overrides, cached_only=cached_only)
    request = body.request.spec()
    check_body_size(request.body, container.settings.max_request_body_bytes)
    check_header_size(request.headers, container.settings.max_request_header_bytes)
    return SubmitServiceCall(
        tenant_id=tenant,
        name=body.name,
        request=request,
        due_at=body.due_at or utcnow() + timedelta(seconds=body.delay_seconds or 0),
        tags=body.tags,
        correlation_id=body.correlation_id,
        idempotency_key=key,
        request_hash=_request_hash(body) if key is not None else "",  # kept only with a key
        retry_policy=retry_policy,
        trace_parent=container.tracer.current_trace_parent(),
    )


def _request_hash(body: ServiceCallCreate) -> str:
    """Identifies a request for Idempotency-Key reuse; ``follow_redirects`` and
    ``secret_headers`` count only when set, so a request hashes as it did before the options
    existed. It is taken over the request in clear, so the same secret matches again whatever
    nonce it was sealed with; only this SHA-256 digest is stored, never the secret."""
    exclude: dict[str, Any] = {"idempotency_key": True}
    unset = {
        name
        for name, value in (
            ("follow_redirects", body.request.follow_redirects),
            ("secret_headers", body.request.secret_headers),
        )
        if not value
    }
    if unset:
        exclude["request"] = unset
    return hashlib.sha256(body.model_dump_json(exclude=exclude).encode()).hexdigest()


# OpenAPI: the header ``_tell_position`` sets on a write's answer
POSITION_HEADER = {
    "X-Duecall-Position": {
        "description": "The log position of the write: a list given it as `min_position` "
        "includes the write (read-your-writes).",
        "schema": {"type": "integer"},
    }
}


def _tell_position(response: Response, position: int | None) -> None:
    """The log position of the write: a read-model query given it as ``min_position`` (or
    ``X-Duecall-Min-Position``) waits until it has folded the write (read-your-writes)."""
    if position is not None:
        response.headers["X-Duecall-Position"] = str(position)


@router.post(
    "",
    status_code=201,
    response_model=ServiceCallPublic,
    responses={
        200: {"description": "The call first submitted with this Idempotency-Key",
              "headers": POSITION_HEADER},
        201: {"headers": POSITION_HEADER},
    },
)
async def submit_service_call(
    body: ServiceCallCreate,
    request: Request,
    tenant: TenantDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    # async: no worker thread per request (the group commit records), and the answer is
    # serialised once here rather than validated again by FastAPI; the container is read from
    # the app, not solved as one more dependency (FastAPI solves each anew per request)
    container: Container = request.app.state.container
    command = await cached_or_off_loop(_command, body, tenant, idempotency_key, container)
    submitted = await container.submits.submit_async(command)  # with concurrent submits
    call, created = submitted[0]
    response = Response(
        _public(call).model_dump_json(),
        status_code=201 if created else 200,
        headers={"Location": f"/v1/service-calls/{call.id}"},
        media_type="application/json",
    )
    _tell_position(response, submitted.position)
    return response


@router.post(
    ":batch",
    status_code=201,
    response_model=ServiceCallBatchResults,
    responses={
        200: {"description": "Every call was submitted before (Idempotency-Keys)",
              "headers": POSITION_HEADER},
        201: {"headers": POSITION_HEADER},
    },
)
def submit_service_calls(
    body: ServiceCallBatchCreate, container: ContainerDep, tenant: TenantDep
) -> Response:
    """Submit up to 1,000 calls: all are validated before any is recorded.

    Each item may carry its own ``idempotency_key``; an item whose key was used before with
    the same request answers with the original call (``created: false``).
    """
    commands = []
    for index, item in enumerate(body.calls):
        try:
            commands.append(_command(item, tenant, item.idempotency_key, container))
        except InvalidRequestError as error:  # the same kind (a too large body stays a 413)
            raise type(error)(f"calls.{index}.{error.field}", error.message) from None
    results = container.service_calls.submit_many(commands)
    answer = ServiceCallBatchResults(
        items=[
            ServiceCallBatchResult(
                id=str(call.id), status=call.status, due_at=call.due_at, created=created
            )
            for call, created in results
        ]
    )
    response = Response(  # serialised once here, not validated again by FastAPI
        answer.model_dump_json(),
        status_code=201 if any(created for _, created in results) else 200,
        media_type="application/json",
    )
    _tell_position(response, results.position)
    return response


@router.get("/{service_call_id}", response_model=ServiceCallPublic)
def get_service_call(
    service_call_id: UUID,
    container: ContainerDep,
    tenant: TenantDep,
    audit: AuditDep,
    at: Annotated[AwareDateTime | None, Query(description="Its state at this time.")] = None,
    version: Annotated[int | None, Query(ge=1, description="Its state at this version.")] = None,
) -> ServiceCallPublic:
    """The call's current state; with `at` (RFC 3339) or `version`, its state then, rebuilt
    from its events (with both: that version, if the call had reached it at `at`). 404 when
    the call had no such state (not submitted yet at `at`, or no such version)."""
    if at is not None or version is not None:
        return _public(audit.call_at(tenant, service_call_id, at=at, version=version))
    return _public(container.service_calls.get_call(tenant, service_call_id))


@router.get("/{service_call_id}/executions", response_model=ExecutionList)
def list_executions(
    service_call_id: UUID, container: ContainerDep, tenant: TenantDep
) -> ExecutionList:
    call = container.service_calls.get_call(tenant, service_call_id)
    executions = container.service_calls.executions_of(call)
    return ExecutionList(items=[ExecutionPublic.model_validate(e.describe()) for e in executions])


@router.post("/{service_call_id}/cancel", response_model=ServiceCallPublic)
def cancel_service_call(
    service_call_id: UUID,
    container: ContainerDep,
    tenant: TenantDep,
    body: CancelRequest | None = None,
) -> ServiceCallPublic:
    """Cancel a call that is submitted, scheduled, paused or running (409 when finished)."""
    reason = body.reason if body else None
    return _public(container.service_calls.cancel(tenant, service_call_id, reason))


@router.post("/{service_call_id}/pause", response_model=ServiceCallPublic)
def pause_service_call(
    service_call_id: UUID, container: ContainerDep, tenant: TenantDep
) -> ServiceCallPublic:
    """Pause a call that has not started: it will not start until resumed."""
    return _public(container.service_calls.pause(tenant, service_call_id))


@router.post("/{service_call_id}/resume", response_model=ServiceCallPublic)
def resume_service_call(
    service_call_id: UUID, container: ContainerDep, tenant: TenantDep
) -> ServiceCallPublic:
    """Resume a paused call: due at its due time, or now if that has passed."""
    return _public(container.service_calls.resume(tenant, service_call_id))


@router.post("/{service_call_id}/retry", response_model=ServiceCallPublic)
def retry_service_call(
    service_call_id: UUID,
    container: ContainerDep,
    tenant: TenantDep,
    body: RetryRequest | None = None,
) -> ServiceCallPublic:
    """Retry a failed call: a new attempt now (or at due_at), same call, history kept."""
    due_at = body.due_at if body else None
    trace_parent = container.tracer.current_trace_parent()
    return _public(container.service_calls.retry(tenant, service_call_id, due_at, trace_parent))
