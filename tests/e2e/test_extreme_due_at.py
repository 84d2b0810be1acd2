"""End to end: a due time at the edge of the calendar must not stop other calls being made."""

import httpx
import pytest

from harness.api_keys import bearer
from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


def test_a_due_at_before_year_one_in_utc_does_not_wedge_the_timer(
    isolated_database_url: str,
) -> None:
    with (
        TargetServer() as target,
        DuecallProcess(isolated_database_url) as server,
        httpx.Client(
            base_url=server.url, headers=bearer(server.tenant_key("extreme")), timeout=10
        ) as api,
    ):
        extreme = api.post(
            "/v1/service-calls",
            json={
                "request": {"url": f"{target.url}/extreme"},
                "due_at": "0001-01-01T00:00:00+14:00",
            },
        )
        assert extreme.status_code == 422, extreme.text
        assert extreme.json()["errors"][0]["field"] == "due_at"

        normal = api.post("/v1/service-calls", json={"request": {"url": f"{target.url}/ok"}})
        assert normal.status_code == 201, normal.text

        def made() -> bool:
            return bool(target.requests_for("/ok"))

        try:
            wait_until(made, timeout=3)
        except TimeoutError:
            pytest.fail(f"the call due now was not made; log tail:\n{server.log_tail(5)}")
