"""The watchdog gives up on an attempt whose workers keep dying: it is failed as `lost`.

test_execution_worker_crash.py covers redelivery (a worker SIGKILLed mid-request; another worker
makes the same attempt again, same Idempotency-Key). Here deliveries are limited to one
(DUECALL_MAX_DELIVERIES=1): when the lease of the killed worker's attempt ends, the next worker
fails that execution as `lost` instead of sending it again, and the call retries by its policy
with attempt 2 (`lost` retries by default).

Real `duecall worker` subprocesses; the test's own container only submits (its workers never
start).
"""

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.ids import execution_id_for
from domain.request import RequestSpec
from domain.retry_policy import Jitter, RetryPolicy
from domain.service_call import Status
from harness.target_server import TargetServer
from harness.worker_processes import WorkerProcesses, workers_fixture
from infrastructure.container import Container
from tests.support.db_queries import outbox_rows, topics
from tests.support.waiting import wait_terminal

TENANT = "t-watchdog"
SLOW_PATH = "/slow/3"  # answers after 3 s: time enough to kill the worker mid-request
TIMEOUT_SECONDS = 5.0
GRACE_SECONDS = 1.0
LEASE_SECONDS = TIMEOUT_SECONDS + GRACE_SECONDS
WORKER_ENV = {
    "DUECALL_EXECUTION_GRACE_SECONDS": str(GRACE_SECONDS),
    "DUECALL_POLL_INTERVAL_SECONDS": "0.2",
    "DUECALL_MAX_DELIVERIES": "1",
    "DUECALL_RECORD_RUNNING_AFTER_SECONDS": "0",  # started first (deferred: test_deferred_start)
    "DUECALL_WORKER_DEAD_AFTER_SECONDS": "300",  # the lease alone (test_worker_liveness: sooner)
}
LEASES = ("kind", "attempt", "claims")  # of the call's outbox messages


workers = workers_fixture(WORKER_ENV)


def test_an_attempt_whose_worker_died_is_failed_as_lost_and_retried_by_policy(
    container: Container, workers: WorkerProcesses
) -> None:
    url = container.database_url
    with TargetServer() as target:
        request = RequestSpec(
            "POST", target.url + SLOW_PATH, body='{"n": 1}', timeout_seconds=TIMEOUT_SECONDS
        )
        policy = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.2, jitter=Jitter.NONE)
        call, created = container.service_calls.submit(
            SubmitServiceCall(TENANT, "watchdog", request, utcnow(), retry_policy=policy)
        )
        assert created
        first_worker = workers.start()

        (first,) = target.wait_for(1, path=SLOW_PATH, timeout=30)
        first_worker.kill()  # SIGKILL while the target is still answering
        first_worker.wait(timeout=10)

        # Leased once, and its outcome never came.
        assert outbox_rows(url, call.id, LEASES) == [("execute", 1, 1)]
        assert container.service_calls.get_call(TENANT, call.id).status == Status.RUNNING

        workers.start()
        first, second = target.wait_for(2, path=SLOW_PATH, timeout=LEASE_SECONDS + 20)

        final = wait_terminal(container, TENANT, call.id, timeout=15)
        deliveries = target.requests_for(SLOW_PATH)

    assert (final.status, final.attempt) == (Status.SUCCEEDED, 2)
    # Attempt 1 was not delivered again: the next delivery is attempt 2, with its own key.
    assert len(deliveries) == 2
    assert first.headers["idempotency-key"] == f"{call.id}:1"
    assert second.headers["idempotency-key"] == f"{call.id}:2"
    assert (second.method, second.body) == (first.method, first.body)
    # Not given up on while the first worker's lease could still be running.
    assert second.received_at - first.received_at >= LEASE_SECONDS - 0.5

    lost, retried = container.service_calls.executions_of(final)
    assert (lost.attempt, lost.outcome, lost.error_kind) == (1, "failed", "lost")
    assert lost.status_code is None
    assert "deliveries" in (lost.message or "")
    assert (retried.attempt, retried.outcome, retried.status_code) == (2, "succeeded", 200)
    assert topics(url, execution_id_for(call.id, 1)) == [
        "duecall:Execution.Started",
        "duecall:Execution.Failed",
    ]
    call_topics = topics(url, call.id)
    failed_at = call_topics.index("duecall:ServiceCall.AttemptFailed")
    assert call_topics[failed_at + 1] == "duecall:ServiceCall.Scheduled"  # retried by policy
    assert call_topics.count("duecall:ServiceCall.Started") == 2
    assert call_topics[-1] == "duecall:ServiceCall.Succeeded"
    assert outbox_rows(url, call.id, LEASES) == []
