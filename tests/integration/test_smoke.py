import pytest

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.request import RequestSpec
from domain.service_call import Status
from harness.target_server import TargetServer
from infrastructure.container import Container
from tests.support.waiting import wait_terminal

pytestmark = pytest.mark.smoke


def test_a_call_due_now_is_made_and_succeeds(container: Container) -> None:
    with TargetServer() as target:
        call, _ = container.service_calls.submit(
            SubmitServiceCall("t1", "smoke", RequestSpec("GET", f"{target.url}/ok"), utcnow())
        )
        container.start_workers()

        assert wait_terminal(container, "t1", call.id, timeout=5).status == Status.SUCCEEDED
        assert len(target.requests_for("/ok")) == 1
