"""A tiny real OTLP/HTTP trace collector for tests: records the spans exporters send it.

    with otlp_collector() as collector:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, ...}
        ...
        span = collector.wait_for(lambda s: s.name == "duecall.attempt")

It answers ``POST /v1/traces`` (protobuf ``ExportTraceServiceRequest``, gzip or not) with an
empty ``ExportTraceServiceResponse``, and decodes each span into an ``ExportedSpan``.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

_HOST = "127.0.0.1"


@dataclass(frozen=True)
class ExportedSpan:
    name: str
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str  # "" for a root span
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error


def _value(value: AnyValue) -> Any:
    field = value.WhichOneof("value")
    return getattr(value, field) if field else None


@contextmanager
def otlp_collector() -> Iterator[OtlpCollector]:
    """A running collector, stopped on exit."""
    collector = OtlpCollector().start()
    try:
        yield collector
    finally:
        collector.stop()


class OtlpCollector:
    def __init__(self) -> None:
        self._spans: list[ExportedSpan] = []
        self._changed = threading.Condition()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> OtlpCollector:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector._record(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer((_HOST, 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "OtlpCollector is not running"
        return f"http://{_HOST}:{self._httpd.server_address[1]}"

    @property
    def spans(self) -> list[ExportedSpan]:
        with self._changed:
            return list(self._spans)

    def wait_for(
        self, matches: Callable[[ExportedSpan], bool], timeout: float = 10.0
    ) -> ExportedSpan:
        """The first span recorded that ``matches``, waiting up to ``timeout`` seconds."""

        def found() -> ExportedSpan | None:
            return next((span for span in self._spans if matches(span)), None)

        with self._changed:
            if self._changed.wait_for(lambda: found() is not None, timeout=timeout):
                span = found()
                assert span is not None
                return span
            names = sorted({span.name for span in self._spans})
        raise TimeoutError(f"no matching span within {timeout}s; spans seen: {names}")

    def _record(self, request: ExportTraceServiceRequest) -> None:
        spans: list[ExportedSpan] = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                spans.extend(
                    ExportedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=span.kind,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        resource=resource,
                        status_code=span.status.code,
                    )
                    for span in scope_spans.spans
                )
        with self._changed:
            self._spans.extend(spans)
            self._changed.notify_all()
