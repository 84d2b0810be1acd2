"""/metrics in Prometheus text format: this process's counters and the database's figures."""

from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.target_server import TargetServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


def _samples(api: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_attempts_lateness_requests_and_read_the_database(
    api: httpx.Client, target: TargetServer, as_tenant: Callable[[str], dict[str, str]]
) -> None:
    before = _samples(api)
    calls = [
        api.post("/v1/service-calls", json={"request": {"method": "GET", "url": url}},
                 headers=as_tenant("metrics")).json()
        for url in (f"{target.url}/ok", f"{target.url}/status/404")
    ]
    def finished(call_id: str) -> Callable[[], str | None]:
        def probe() -> str | None:
            response = api.get(f"/v1/service-calls/{call_id}", headers=as_tenant("metrics"))
            finished_at: str | None = response.json()["finished_at"]
            return finished_at

        return probe

    for call in calls:
        wait_until(finished(call["id"]))

    def moved() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        now = _samples(api)
        done = _value(now, "duecall_attempts_total", outcome="failed") > _value(
            before, "duecall_attempts_total", outcome="failed")
        return now if done else None

    after = wait_until(moved, timeout=10)
    assert _value(after, "duecall_attempts_started_total") - _value(
        before, "duecall_attempts_started_total") >= 2
    ok = ("duecall_attempts_finished_total", {"outcome": "succeeded", "error_kind": ""})
    bad = ("duecall_attempts_finished_total", {"outcome": "failed", "error_kind": "http_error"})
    for name, labels in (ok, bad):
        assert _value(after, name, **labels) > _value(before, name, **labels)
    assert _value(after, "duecall_start_lateness_seconds_count") >= 2
    assert _value(after, "duecall_attempt_errors_total", error_kind="http_error") >= 1
    submitted = {"method": "POST", "route": "/v1/service-calls", "status": "201"}
    assert _value(after, "duecall_api_request_duration_seconds_count", **submitted) >= 2
    assert _value(after, "duecall_calls", status="succeeded") >= 1
    assert _value(after, "duecall_calls_submitted_total") >= 2  # every call accepted, all processes
    assert ("duecall_projection_lag_events", frozenset({("projection", "statistics")})) in after
    assert ("duecall_circuits", frozenset({("state", "open")})) in after
