"""End to end: SIGTERM stops `duecall serve` cleanly, and a scheduled call survives a restart."""

import httpx
import pytest

from tests.support.duecall_process import DuecallProcess
from tests.support.target_server import TargetServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


def test_a_call_scheduled_before_a_restart_is_made_after_it(database_url: str) -> None:
    with TargetServer() as target:
        with DuecallProcess(database_url) as first:
            response = httpx.post(
                f"{first.url}/v1/service-calls",
                json={
                    "name": "e2e-restart",
                    "request": {"method": "POST", "url": f"{target.url}/durable"},
                    "delay_seconds": 1.5,
                },
                timeout=10,
            )
            assert response.status_code == 201, response.text
            call_id = response.json()["id"]
            first.stop()

            assert not first.killed, first.log_tail()
            assert first.returncode in (0, -15), first.log_tail()  # uvicorn re-raises SIGTERM
            assert '"workers_stopped"' in first.log_text()
        assert target.requests_for("/durable") == []

        with DuecallProcess(database_url) as second:

            def finished() -> dict[str, object] | None:
                call: dict[str, object] = httpx.get(
                    f"{second.url}/v1/service-calls/{call_id}", timeout=10
                ).json()
                return call if call["status"] in ("succeeded", "failed") else None

            final = wait_until(finished, timeout=10, interval=0.1)

        assert final["status"] == "succeeded"
        [request] = target.requests_for("/durable")
        assert request.headers["idempotency-key"] == f"{call_id}:1"
