"""A worker killed mid-request loses only its lease: the attempt is made again, same key.

Real worker processes (`duecall worker`), SIGKILLed while the target is still answering.
"""

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.ids import execution_id_for
from domain.request import RequestSpec
from domain.service_call import Status
from harness.target_server import TargetServer
from harness.worker_processes import WorkerProcesses, workers_fixture
from infrastructure.container import Container
from tests.support.db_queries import outbox_rows, topics
from tests.support.waiting import wait_terminal

TENANT = "t-crash"
SLOW_PATH = "/slow/1.5"  # answers after 1.5 s: time enough to kill the worker mid-request
TIMEOUT_SECONDS = 2.5
GRACE_SECONDS = 1.0
LEASE_SECONDS = TIMEOUT_SECONDS + GRACE_SECONDS
WORKER_ENV = {
    "DUECALL_EXECUTION_GRACE_SECONDS": str(GRACE_SECONDS),
    "DUECALL_POLL_INTERVAL_SECONDS": "0.2",
    "DUECALL_RECORD_RUNNING_AFTER_SECONDS": "0",  # started first (deferred: test_deferred_start)
    "DUECALL_WORKER_DEAD_AFTER_SECONDS": "300",  # the lease alone (test_worker_liveness: sooner)
}
LEASES = ("kind", "claims")  # of the call's outbox messages


workers = workers_fixture(WORKER_ENV)


def test_a_worker_killed_between_started_and_finished_leaves_the_attempt_to_be_made_again(
    container: Container, workers: WorkerProcesses
) -> None:
    url = container.database_url
    with TargetServer() as target:
        request = RequestSpec(
            "POST", target.url + SLOW_PATH, body='{"n": 1}', timeout_seconds=TIMEOUT_SECONDS
        )
        call, _ = container.service_calls.submit(
            SubmitServiceCall(TENANT, "crash", request, utcnow())
        )
        execution_id = execution_id_for(call.id, 1)
        first_worker = workers.start()

        (first,) = target.wait_for(1, path=SLOW_PATH, timeout=20)
        first_worker.kill()  # SIGKILL while the target is still answering
        first_worker.wait(timeout=10)

        assert outbox_rows(url, call.id, LEASES) == [("execute", 1)]  # leased, not lost
        assert container.service_calls.get_call(TENANT, call.id).status == Status.RUNNING
        # Started is recorded with the outcome: the leased message is the record meanwhile
        assert topics(url, execution_id) == []

        workers.start()
        first, second = target.wait_for(2, path=SLOW_PATH, timeout=LEASE_SECONDS + 15)

        final = wait_terminal(container, TENANT, call.id, timeout=15)
        deliveries = target.requests_for(SLOW_PATH)

    assert final.status == Status.SUCCEEDED
    assert final.attempt == 1
    assert len(deliveries) == 2
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == f"{call.id}:1"
    assert (second.method, second.body) == (first.method, first.body)
    # Not re-claimed while the first worker's lease could still be running.
    assert second.received_at - first.received_at >= LEASE_SECONDS - 0.5
    assert topics(url, execution_id) == [
        "duecall:Execution.Started",
        "duecall:Execution.Succeeded",
    ]
    call_topics = topics(url, call.id)
    assert call_topics.count("duecall:ServiceCall.Started") == 1
    assert call_topics[-1] == "duecall:ServiceCall.Succeeded"
    assert outbox_rows(url, call.id, LEASES) == []
