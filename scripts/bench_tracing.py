"""Micro-benchmark: what tracing costs per API request and per HTTP attempt.

    .venv/bin/python scripts/bench_tracing.py [--requests 5000] [--attempts 100000]

Off (the default, DUECALL_TRACING=none) against on (the SDK with a batch processor whose
exporter drops the spans, so only duecall's and the SDK's own work is measured, not an
exporter's I/O). An API request: a FastAPI app set up as duecall's (its native request span,
the tenant tagged from a dependency, the traceparent read in the route) driven in-process over
ASGI. An attempt: the worker's tracing calls around one send (span, traceparent, attributes).
Off is measured first: the global tracer provider can be set only once per process.
"""

import argparse
import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated
from uuid import uuid4

import httpx
from fastapi import Depends, FastAPI

from application.outbox import execute_message
from application.service_calls import Attempt
from application.tracing import NO_TRACING, Tracer
from domain.execution import Execution
from domain.outcome import AttemptResult
from domain.request import RequestSpec


def _attempt() -> Attempt:
    request = RequestSpec("POST", "https://example.com/hook", {}, "{}")
    now = datetime.now(UTC)
    call_id, execution_id = uuid4(), uuid4()
    trace_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    message = execute_message("t", call_id, 1, execution_id, request, now, 30.0, trace_parent)
    execution = Execution.begin(
        id=execution_id, tenant_id="t", service_call_id=call_id, attempt=1, request=request,
        now=now,
    )
    return Attempt(message, execution, request)


def per_attempt_us(tracer: Tracer, count: int) -> float:
    """The worker's tracing work for one attempt (tracer.attempt, headers, span.end)."""
    attempt, result = _attempt(), AttemptResult(12.0, status_code=200)
    began = time.perf_counter()
    for _ in range(count):
        span = tracer.attempt(attempt)
        headers = {"Idempotency-Key": attempt.idempotency_key, **span.headers}
        span.end(result)
    del headers
    return (time.perf_counter() - began) / count * 1e6


def baseline_attempt_us(count: int) -> float:
    attempt = _attempt()
    began = time.perf_counter()
    for _ in range(count):
        headers = {"Idempotency-Key": attempt.idempotency_key}
    del headers
    return (time.perf_counter() - began) / count * 1e6


def _app(tracer: Tracer | None) -> FastAPI:
    """duecall's tracing calls (``tracer``), or none at all (None: the baseline)."""
    app = FastAPI(telemetry={"operation_spans": False, "auto_configure": False})

    def tenant() -> str:
        if tracer is not None:
            tracer.request_tenant("t")
        return "t"

    @app.post("/v1/service-calls/{call_id}")
    async def submit(call_id: str, tenant: Annotated[str, Depends(tenant)]) -> dict[str, str]:
        trace = tracer.current_trace_parent() if tracer is not None else None
        return {"id": call_id, "trace": trace or ""}

    return app


def per_request_us(tracer: Tracer | None, count: int) -> float:
    async def run() -> float:
        transport = httpx.ASGITransport(app=_app(tracer))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(200):  # warm up
                await client.post("/v1/service-calls/x")
            began = time.perf_counter()
            for _ in range(count):
                await client.post("/v1/service-calls/x")
            return (time.perf_counter() - began) / count * 1e6

    return asyncio.run(run())


def _best(measures: dict[str, Callable[[], float]], runs: int = 7) -> dict[str, float]:
    """The best of ``runs`` of each, taken in turns (a busy machine slows them alike)."""
    best = dict.fromkeys(measures, float("inf"))
    for _ in range(runs):
        for name, measure in measures.items():
            best[name] = min(best[name], measure())
    return best


def _tracing_on() -> Tracer:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from infrastructure.tracing import INSTRUMENTATION, OpenTelemetryTracer

    class Dropping(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping(), max_queue_size=1 << 20))
    trace.set_tracer_provider(provider)
    return OpenTelemetryTracer(trace.get_tracer(INSTRUMENTATION))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--attempts", type=int, default=100_000)
    args = parser.parse_args()
    figures = _best({
        "attempt, no tracing code": lambda: baseline_attempt_us(args.attempts),
        "attempt, tracing off": lambda: per_attempt_us(NO_TRACING, args.attempts),
        "API request, no tracing code": lambda: per_request_us(None, args.requests),
        "API request, tracing off": lambda: per_request_us(NO_TRACING, args.requests),
    })
    tracer = _tracing_on()
    figures |= _best({
        "attempt, tracing on": lambda: per_attempt_us(tracer, args.attempts // 10),
        "API request, tracing on": lambda: per_request_us(tracer, args.requests),
    })
    for name, micros in figures.items():
        print(f"{name:<30} {micros:9.2f} µs")


if __name__ == "__main__":
    main()
