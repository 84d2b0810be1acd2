"""The tracing port implemented with OpenTelemetry, set up when ``DUECALL_TRACING`` asks.

``none`` (the default): ``NO_TRACING``, and no SDK is set up at all (the API middleware is not
even installed). ``otlp``: spans are exported in batches over OTLP/HTTP (protobuf) to
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), default
http://localhost:4318. ``console``: printed to stdout. The SDK reads its standard variables:
``OTEL_SERVICE_NAME`` (default here: ``duecall``), ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``, ``OTEL_EXPORTER_OTLP_HEADERS``...

Trace context travels as W3C ``traceparent``/``tracestate``.
"""

import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from application.outbox import correlation_id_of, trace_parent_of
from application.service_calls import Attempt
from application.tracing import NO_TRACING, AttemptSpan, Tracer
from domain.outcome import AttemptResult

_W3C = TraceContextTextMapPropagator()
INSTRUMENTATION = "duecall"
_FLUSH_SECONDS = 2.0  # at a stop; a collector that is away then gets no more tries
_sdk: tuple[Any, Any] | None = None  # (TracerProvider, SpanExporter): once per process


def build_tracer(kind: str) -> Tracer:
    """The tracer for ``DUECALL_TRACING`` = ``kind`` (none, otlp, console)."""
    if kind == "none":
        return NO_TRACING
    _set_up_sdk(kind)
    return OpenTelemetryTracer(trace.get_tracer(INSTRUMENTATION))


def _set_up_sdk(kind: str) -> None:
    global _sdk  # noqa: PLW0603 - one global provider per process, as the SDK expects
    if _sdk is not None:
        return
    # imported only when tracing is on: the SDK and its exporters are never loaded otherwise
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "duecall"}))
    exporter: SpanExporter
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _sdk = provider, exporter


class OpenTelemetryTracer:
    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def current_trace_parent(self) -> str | None:
        carrier: dict[str, str] = {}
        _W3C.inject(carrier)  # nothing when no valid span is current
        return carrier.get("traceparent")

    def request_tenant(self, tenant_id: str) -> None:
        trace.get_current_span().set_attribute("duecall.tenant_id", tenant_id)

    def attempt(self, attempt: Attempt) -> AttemptSpan:
        message = attempt.message
        stored = trace_parent_of(message)
        parent = _W3C.extract({"traceparent": stored}) if stored else otel_context.Context()
        attributes: dict[str, str | int] = {
            "duecall.tenant_id": message.tenant_id,
            "duecall.service_call_id": str(message.service_call_id),
            "duecall.attempt": message.attempt,
            "duecall.execution_id": str(attempt.execution.id),
            "http.request.method": attempt.request.method,
            "server.address": attempt.request.host,
        }
        correlation_id = correlation_id_of(message)
        if correlation_id is not None:
            attributes["duecall.correlation_id"] = correlation_id
        span = self._tracer.start_span(
            "duecall.attempt", context=parent, kind=SpanKind.CLIENT, attributes=attributes
        )
        headers: dict[str, str] = {}
        _W3C.inject(headers, trace.set_span_in_context(span))
        return _AttemptSpan(span, headers)

    def flush(self) -> None:
        if _sdk is None:
            return
        provider, exporter = _sdk
        # force_flush exports in this thread, and retries while the collector is away (up to
        # OTEL_EXPORTER_OTLP_TIMEOUT, 10 s): past _FLUSH_SECONDS the exporter is stopped
        give_up = threading.Timer(_FLUSH_SECONDS, exporter.shutdown)
        give_up.daemon = True
        give_up.start()
        try:
            provider.force_flush()
        finally:
            give_up.cancel()


class _AttemptSpan:
    __slots__ = ("_span", "headers")

    def __init__(self, span: trace.Span, headers: Mapping[str, str]) -> None:
        self._span = span
        self.headers = headers

    def end(self, result: AttemptResult | None) -> None:
        span = self._span
        if result is None:
            span.set_attribute("duecall.outcome", "abandoned")
        else:
            span.set_attribute("duecall.outcome", "succeeded" if result.succeeded else "failed")
            if result.status_code is not None:
                span.set_attribute("http.response.status_code", result.status_code)
            if result.error_kind is not None:
                span.set_attribute("error.type", result.error_kind.value)
                span.set_status(StatusCode.ERROR, result.message)
        span.end()
