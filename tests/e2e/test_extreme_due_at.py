"""End to end: a due time at the edge of the calendar must not stop other calls being made."""

import httpx
import pytest

from tests.support.duecall_process import DuecallProcess
from tests.support.target_server import TargetServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


@pytest.mark.xfail(
    strict=True,
    raises=pytest.fail.Exception,
    reason="product bug: due_at 0001-01-01T00:00:00+14:00 is accepted, its timer row (a year-0 "
    "UTC timestamp) cannot be loaded by the timer's claim, and the timer stage fails on every "
    "poll, so no call of any tenant is started any more",
)
def test_a_due_at_before_year_one_in_utc_does_not_wedge_the_timer(
    isolated_database_url: str,
) -> None:
    with (
        TargetServer() as target,
        DuecallProcess(isolated_database_url) as server,
        httpx.Client(base_url=server.url, timeout=10) as api,
    ):
        extreme = api.post(
            "/v1/service-calls",
            json={
                "request": {"url": f"{target.url}/extreme"},
                "due_at": "0001-01-01T00:00:00+14:00",
            },
        )
        assert extreme.status_code in (201, 422), extreme.text  # refusing it is a fix too

        normal = api.post("/v1/service-calls", json={"request": {"url": f"{target.url}/ok"}})
        assert normal.status_code == 201, normal.text

        def made() -> bool:
            return bool(target.requests_for("/ok"))

        try:
            wait_until(made, timeout=3)
        except TimeoutError:
            pytest.fail(f"the call due now was not made; log tail:\n{server.log_tail(5)}")
