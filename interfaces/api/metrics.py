"""``GET /metrics`` (Prometheus text format) and the API's request timing.

The answer holds this process's own figures (API requests; attempts and timer lateness when
the workers run here too, as with ``duecall serve``) and the ones read from the database at
scrape time (infrastructure/metrics_collector.py). Like /healthz it needs no API key: expose it
to your monitoring network only.
"""

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from application.metrics import API_REQUEST_SECONDS
from infrastructure.container import Container
from infrastructure.metrics_collector import DatabaseMetrics

router = APIRouter(tags=["health"])


def database_registry(container: Container) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        DatabaseMetrics(container.outbox.pool, container.service_calls, container.read_models)
    )
    return registry


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    database: CollectorRegistry = request.app.state.metrics_registry
    body = generate_latest(REGISTRY) + await run_in_threadpool(generate_latest, database)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class RequestTiming:
    """Pure ASGI middleware: each HTTP request's duration by method, route template, status."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            API_REQUEST_SECONDS.labels(scope["method"], template, str(status[0])).observe(
                time.perf_counter() - started
            )
