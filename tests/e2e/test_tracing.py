"""OpenTelemetry tracing (DUECALL_TRACING=otlp): spans exported over real OTLP/HTTP to a local
collector, the W3C traceparent received by a real target; and nothing of it when off."""

import re
from collections.abc import Callable, Iterator

import httpx
import pytest

from harness.api_keys import tenant_headers
from harness.databases import fresh_database
from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer
from tests.support.otlp_collector import ExportedSpan, OtlpCollector, otlp_collector
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")
CLIENT_TRACE, CLIENT_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def collector() -> Iterator[OtlpCollector]:
    with otlp_collector() as running:
        yield running


@pytest.fixture(scope="module")
def traced(server_url: str, collector: OtlpCollector) -> Iterator[httpx.Client]:
    """A client of a `duecall serve` with tracing on, on a database of its own (so that the
    module's untraced server never makes its attempts)."""
    env = {
        "DUECALL_TRACING": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_SERVICE_NAME": "duecall-e2e",
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # export every 50 ms, not every 5 s
    }
    with (
        fresh_database(server_url, prefix="duecall_e2e") as url,
        DuecallProcess(url, extra_env=env) as server,
        httpx.Client(
            base_url=server.url, headers=tenant_headers(server.url, "traced"), timeout=10.0
        ) as client,
    ):
        yield client


def _with_id(span_id: str) -> Callable[[ExportedSpan], bool]:
    return lambda span: span.span_id == span_id


def _ids(traceparent: str) -> tuple[str, str]:
    match = TRACEPARENT.match(traceparent)
    assert match, f"not a W3C traceparent: {traceparent!r}"
    return match.group(1), match.group(2)


def test_attempts_send_a_traceparent_of_their_exported_spans_continuing_the_submit(
    traced: httpx.Client, collector: OtlpCollector, target: TargetServer
) -> None:
    target.set_sequence("traced", [503, 200])
    submitted = traced.post(
        "/v1/service-calls",
        json={
            "request": {"method": "POST", "url": f"{target.url}/sequence/traced", "body": "{}"},
            "correlation_id": "order-42",
            "retry_policy": {"initial_backoff_seconds": 0.1, "jitter": "none"},
        },
        headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
    )
    assert submitted.status_code == 201, submitted.text
    call_id = submitted.json()["id"]

    received = target.wait_for(2, path="/sequence/traced")
    api = collector.wait_for(lambda s: s.name == "POST /v1/service-calls")
    assert (api.trace_id, api.parent_span_id) == (CLIENT_TRACE, CLIENT_SPAN)  # continued
    assert api.attributes["http.route"] == "/v1/service-calls"
    assert api.attributes["http.request.method"] == "POST"
    assert api.attributes["http.response.status_code"] == 201
    assert api.attributes["duecall.tenant_id"] == "traced"
    assert api.resource["service.name"] == "duecall-e2e"
    in_trace = [span.name for span in collector.spans if span.trace_id == CLIENT_TRACE]
    assert in_trace.count("POST /v1/service-calls") == 1  # one span per request, no doubles

    for number, (request, status) in enumerate(zip(received, (503, 200), strict=True), 1):
        trace_id, span_id = _ids(request.headers["traceparent"])
        assert trace_id == CLIENT_TRACE  # every attempt, the retry too, continues the submit
        attempt = collector.wait_for(_with_id(span_id))
        assert attempt.name == "duecall.attempt"
        assert (attempt.trace_id, attempt.parent_span_id) == (trace_id, api.span_id)
        assert attempt.attributes["duecall.service_call_id"] == call_id
        assert attempt.attributes["duecall.attempt"] == number
        assert attempt.attributes["duecall.correlation_id"] == "order-42"
        assert attempt.attributes["duecall.tenant_id"] == "traced"
        assert attempt.attributes["server.address"] == "127.0.0.1"
        assert attempt.attributes["http.response.status_code"] == status
        assert attempt.attributes["duecall.outcome"] == ("failed" if status == 503 else "succeeded")
        assert attempt.attributes.get("error.type") == ("http_error" if status == 503 else None)

    # per attempt, never part of the call's recorded request
    wait_until(lambda: traced.get(f"/v1/service-calls/{call_id}").json()["finished_at"])
    executions = traced.get(f"/v1/service-calls/{call_id}/executions").json()["items"]
    assert len(executions) == 2
    for execution in executions:
        assert "traceparent" not in {name.lower() for name in execution["request"]["headers"]}


def test_an_api_request_has_a_span_named_by_its_route_template(
    traced: httpx.Client, collector: OtlpCollector
) -> None:
    missing = "0190a6b2-0000-7000-8000-000000000000"
    assert traced.get(f"/v1/service-calls/{missing}").status_code == 404
    span = collector.wait_for(lambda s: s.attributes.get("url.path", "").endswith(missing))
    assert span.name == "GET /v1/service-calls/{service_call_id}"
    assert span.attributes["http.route"] == "/v1/service-calls/{service_call_id}"
    assert span.attributes["http.response.status_code"] == 404
    assert span.parent_span_id == ""  # no traceparent came with it: a trace of its own


def test_with_tracing_off_no_traceparent_is_sent(
    api: httpx.Client, target: TargetServer
) -> None:
    submitted = api.post(
        "/v1/service-calls",
        json={"request": {"method": "GET", "url": f"{target.url}/untraced"}},
        headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
    )
    assert submitted.status_code == 201, submitted.text
    [request] = target.wait_for(1, path="/untraced")
    assert "traceparent" not in request.headers
    assert wait_until(lambda: api.get(f"/v1/service-calls/{submitted.json()['id']}").json()[
        "finished_at"])
