"""End to end: a call outlives the process that accepted it, and SIGTERM stops a server cleanly.

`duecall api` (no workers) accepts the call and is stopped; a later `duecall serve` makes it.
"""

from typing import Any

import httpx
import pytest

from harness.api_keys import bearer
from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


def assert_stopped_cleanly(process: DuecallProcess) -> None:
    process.stop()
    assert not process.killed, f"needed SIGKILL:\n{process.log_tail()}"
    # uvicorn re-raises the SIGTERM it handled once its shutdown is complete
    assert process.returncode in (0, -15), process.log_tail()
    assert "Application shutdown complete" in process.log_text()


def test_a_call_accepted_by_one_process_is_made_by_the_next(database_url: str) -> None:
    with TargetServer() as target:
        with DuecallProcess(database_url, command="api") as api_only:
            key = api_only.tenant_key("restart")  # kept in the database: the next process knows it
            response = httpx.post(
                f"{api_only.url}/v1/service-calls",
                json={
                    "name": "e2e-restart",
                    "request": {"method": "POST", "url": f"{target.url}/durable"},
                },
                headers=bearer(key),
                timeout=10,
            )
            assert response.status_code == 201, response.text
            call_id = response.json()["id"]
            assert_stopped_cleanly(api_only)
            assert '"workers_started"' not in api_only.log_text()
        assert target.requests_for("/durable") == []  # `duecall api` runs no workers

        with DuecallProcess(database_url) as server:

            def finished() -> dict[str, Any] | None:
                call: dict[str, Any] = httpx.get(
                    f"{server.url}/v1/service-calls/{call_id}", headers=bearer(key), timeout=10
                ).json()
                return call if call["status"] in ("succeeded", "failed", "cancelled") else None

            final = wait_until(finished, timeout=10, interval=0.1)
            assert_stopped_cleanly(server)
            assert '"workers_stopped"' in server.log_text()

        assert final["status"] == "succeeded"
        [request] = target.requests_for("/durable")
        assert request.headers["idempotency-key"] == f"{call_id}:1"
