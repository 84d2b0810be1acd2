"""The FastAPI application: built by a factory, wired in its lifespan."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from infrastructure import gc_tuning
from infrastructure.container import Container
from infrastructure.settings import Settings
from interfaces.api import metrics, openapi
from interfaces.api.body_limit import BodyLimit
from interfaces.api.problems import install_problem_handlers
from interfaces.api.routes import (
    admin,
    audit,
    circuits,
    events,
    health,
    queries,
    retry_policy,
    schedule_queries,
    schedules,
    service_calls,
    signing,
    workflow_definitions,
    workflow_events,
    workflow_queries,
    workflows,
)
from interfaces.api.ui import install as install_ui


def create_app(settings: Settings | None = None, *, with_workers: bool = False) -> FastAPI:
    """The API; with ``with_workers`` the same process also runs the workers."""
    configured = settings or Settings()
    traced = configured.tracing != "none"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = await run_in_threadpool(Container.build, configured)
        app.state.container = container
        app.state.metrics_registry = metrics.database_registry(container)
        # What start-up built lives as long as the process: out of the collector's sight, full
        # collections stay short (they showed in the p99 of /v1/stats).
        gc.freeze()
        if with_workers:
            container.start_workers()
            container.start_projections()
            gc_tuning.tune()
        app.state.event_hub = events.hub_for(container)  # its tail starts with a subscriber
        try:
            yield
        finally:
            gc.unfreeze()
            await app.state.event_hub.aclose()
            await run_in_threadpool(container.close)

    app = FastAPI(
        title="duecall",
        version="0.1.0",
        summary="Durable scheduled HTTP calls, event-sourced in PostgreSQL.",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry spans: one per request (named by route template), only
        # once DUECALL_TRACING set up a tracer provider; exporters are ours (tracing.py). Off,
        # FastAPI does not look for providers on every request.
        telemetry={
            "tracing": traced,
            "metrics": traced,
            "logs": traced,
            "operation_spans": False,
            "auto_configure": False,
        },
    )
    install_problem_handlers(app)
    openapi.install(app)
    app.add_middleware(BodyLimit, max_bytes=configured.max_api_body_bytes)
    app.add_middleware(metrics.RequestTiming)
    app.include_router(metrics.router)
    app.include_router(health.router)
    app.include_router(service_calls.router)
    app.include_router(circuits.router)
    app.include_router(retry_policy.router)
    app.include_router(queries.router)
    app.include_router(schedule_queries.router)
    app.include_router(schedules.router)
    app.include_router(workflow_queries.router)  # before workflows': /runs/latest is no run id
    app.include_router(workflows.router)
    app.include_router(workflow_events.router)
    app.include_router(workflow_definitions.router)
    app.include_router(audit.router)
    app.include_router(events.router)
    app.include_router(signing.router)
    app.include_router(admin.router)
    install_ui(app)
    return app
