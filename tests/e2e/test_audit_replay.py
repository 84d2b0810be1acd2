"""End to end: a call that fails twice, is retried by hand and succeeds, replayed from its
recorded events with `duecall replay`, and found again in the tenant's NDJSON export."""

import json
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from harness.api_keys import bearer, issue_tenant_key
from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer
from interfaces import cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


def _status(api: httpx.Client, headers: dict[str, str], call_id: str) -> str:
    response = api.get(f"/v1/service-calls/{call_id}", headers=headers)
    status: str = response.json()["status"]
    return status


@pytest.fixture(scope="module")
def replayed(api: httpx.Client, target: TargetServer) -> tuple[str, str]:
    """(API key of a new tenant, call id) of a call of that tenant answered 500, 503 (failed),
    then retried by hand: 200."""
    tenant, name = f"audit-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    key = issue_tenant_key(str(api.base_url).rstrip("/"), tenant)
    target.set_sequence(name, [500, 503, 200])
    body = {
        "name": "replayed",
        "request": {"url": f"{target.url}/sequence/{name}",
                    "headers": {"Authorization": "Bearer s3cret"}},
        "retry_policy": {"max_attempts": 2, "initial_backoff_seconds": 0.2, "jitter": "none"},
    }
    headers = bearer(key)
    call_id = api.post("/v1/service-calls", json=body, headers=headers).json()["id"]
    wait_until(lambda: _status(api, headers, call_id) == "failed", timeout=15)
    assert api.post(f"/v1/service-calls/{call_id}/retry", headers=headers).status_code == 200
    wait_until(lambda: _status(api, headers, call_id) == "succeeded", timeout=15)
    return key, call_id


def _cli(server: DuecallProcess, *args: str) -> str:
    result = CliRunner().invoke(cli.app, [*args, "--api", server.url],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_replay_tells_the_story_of_the_call(
    replayed: tuple[str, str], duecall_server: DuecallProcess
) -> None:
    key, call_id = replayed
    out = " ".join(_cli(duecall_server, "replay", call_id, "--api-key", key).split())
    story = [
        "submitted 'replayed': POST", "attempt 1 due", "attempt 1 started",
        "✗ http_error 500", "attempt 1 failed (http_error 500): retryable",
        "attempt 2 scheduled: backoff 1: waits 0.2 s", "✗ http_error 503",
        "failed after attempt 2: attempts_exhausted",
        "manual retry requested: attempt 3", "attempt 3 scheduled (manual retry)",
        "(by client)", "← 200", "succeeded on attempt 3 (200",
    ]
    positions = [out.find(step) for step in story]
    assert -1 not in positions, [s for s, p in zip(story, positions, strict=True) if p < 0]
    assert positions == sorted(positions)
    assert "s3cret" not in out


def test_replay_json_is_the_recorded_history(
    replayed: tuple[str, str], duecall_server: DuecallProcess
) -> None:
    key, call_id = replayed
    history = json.loads(_cli(duecall_server, "replay", call_id, "--api-key", key, "--json"))
    assert len(history["items"]) == 17
    assert history["items"][0]["payload"]["headers"]["Authorization"] == "[REDACTED]"


def test_the_tenants_export_holds_the_history_and_resumes(
    replayed: tuple[str, str], api: httpx.Client
) -> None:
    key, call_id = replayed
    headers = bearer(key)
    history = api.get(f"/v1/service-calls/{call_id}/events", headers=headers).json()["items"]

    def export(**params: Any) -> list[dict[str, Any]]:
        response = api.get("/v1/audit/export", params=params, headers=headers)
        assert response.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in response.text.splitlines()]

    lines = export()
    calls = [line for line in lines if line["type"].split(".")[0] != "Circuit"]
    assert calls == history
    resumed = export(after=lines[5]["position"])
    assert resumed == lines[6:]
    start, end = lines[3]["recorded_at"], lines[-1]["recorded_at"]  # one per transaction
    window = export(**{"from": start, "to": end})
    at = datetime.fromisoformat
    assert window == [line for line in lines if at(start) <= at(line["recorded_at"]) < at(end)]
    assert lines[3] in window
    assert lines[-1] not in window
