"""The timer's early start: an attempt is recorded (as started at its due time) before it is
due, leased to the worker whose execution loop sends it at the due time. It stays durable:

* a worker killed after the early start, before the due time, loses only its lease: another
  worker makes the attempt when the lease ends (late, never lost, never before it is due);
* a call cancelled after its early start, before its due time, is not made: the worker looks
  for a cancel just before the due time and withdraws the attempt;
* a worker stopped gracefully meanwhile either makes the attempt at its due time as it drains,
  or hands it back, available at its due time, to be sent then by another worker: once, not
  before its due time, not after its lease.

Real worker processes (`duecall worker`), a real target.
"""

import signal
from datetime import timedelta

from application.clock import utcnow
from application.commands import SubmitServiceCall
from application.outbox import START, unread
from application.service_calls import Attempt
from domain.request import RequestSpec
from domain.service_call import ServiceCall, Status
from harness.target_server import TargetServer
from harness.worker_processes import WorkerProcesses, workers_fixture
from infrastructure.container import Container
from tests.support.db_queries import outbox_rows
from tests.support.waiting import wait_terminal, wait_until

TENANT = "t-early"
PRESTART = 1.5  # long, so that the test can act between the start and the due time
TIMEOUT_SECONDS = 2.0
GRACE_SECONDS = 1.0
WORKER_ENV = {
    "DUECALL_TIMER_PRESTART_SECONDS": str(PRESTART),
    "DUECALL_TIMER_LOOKAHEAD_SECONDS": "3",
    "DUECALL_EXECUTION_GRACE_SECONDS": str(GRACE_SECONDS),
    "DUECALL_POLL_INTERVAL_SECONDS": "0.2",
    "DUECALL_SHUTDOWN_TIMEOUT_SECONDS": "4",
    "DUECALL_RECORD_RUNNING_AFTER_SECONDS": "0",  # started first (deferred: test_deferred_start)
    "DUECALL_WORKER_DEAD_AFTER_SECONDS": "300",  # the lease alone (test_worker_liveness: sooner)
}
LEASES = ("kind", "claims")

workers = workers_fixture(WORKER_ENV)


def _submit_due_in(container: Container, url: str, seconds: float) -> ServiceCall:
    request = RequestSpec("POST", url, body="{}", timeout_seconds=TIMEOUT_SECONDS)
    due_at = utcnow() + timedelta(seconds=seconds)
    call, _ = container.service_calls.submit(SubmitServiceCall(TENANT, "early", request, due_at))
    return call


def _ready(workers: WorkerProcesses, count: int) -> None:
    wait_until(lambda: workers.logs().count("workers_started") >= count, timeout=60)


def _started_early(container: Container, call: ServiceCall) -> bool:
    status = container.service_calls.get_call(TENANT, call.id).status
    return status == Status.RUNNING and utcnow() < call.due_at


def test_a_worker_killed_after_an_early_start_leaves_the_attempt_to_its_lease(
    container: Container, workers: WorkerProcesses
) -> None:
    url = container.database_url
    with TargetServer() as target:
        first_worker = workers.start()
        _ready(workers, 1)
        call = _submit_due_in(container, f"{target.url}/ok", 2.5)
        wait_until(lambda: _started_early(container, call), timeout=10, interval=0.02)
        first_worker.kill()  # SIGKILL: the attempt is recorded as started, not yet sent
        first_worker.wait(timeout=10)
        assert outbox_rows(url, call.id, LEASES) == [("execute", 1)]  # leased, not lost

        workers.start()
        (request,) = target.wait_for(1, path="/ok", timeout=30)
        final = wait_terminal(container, TENANT, call.id, timeout=15)

    due = call.due_at.timestamp()
    assert final.status == Status.SUCCEEDED
    assert final.attempt == 1
    # made by the second worker once the lease (from the due time) ended
    assert request.received_at >= due + TIMEOUT_SECONDS + GRACE_SECONDS - 0.5
    assert request.headers["idempotency-key"] == f"{call.id}:1"
    assert outbox_rows(url, call.id, LEASES) == []


def test_a_worker_stopped_after_an_early_start_makes_the_attempt_once_at_its_due_time(
    container: Container, workers: WorkerProcesses
) -> None:
    url = container.database_url
    with TargetServer() as target:
        first_worker = workers.start()
        second_worker = workers.start()
        _ready(workers, 2)
        call = _submit_due_in(container, f"{target.url}/ok", 2.5)
        wait_until(lambda: _started_early(container, call), timeout=10, interval=0.02)
        # Whichever worker started it: stop both gracefully, then start a fresh one.
        for worker in (first_worker, second_worker):
            worker.send_signal(signal.SIGTERM)
        for worker in (first_worker, second_worker):
            assert worker.wait(timeout=15) == 0
        if utcnow() < call.due_at:
            assert outbox_rows(url, call.id, LEASES) == [("execute", 1)]
        workers.start()
        (request,) = target.wait_for(1, path="/ok", timeout=30)
        final = wait_terminal(container, TENANT, call.id, timeout=15)

    due = call.due_at.timestamp()
    assert final.status == Status.SUCCEEDED
    assert request.received_at >= due  # never before its due time
    assert request.received_at < due + TIMEOUT_SECONDS + GRACE_SECONDS  # not after the lease
    assert len(target.requests_for("/ok")) == 1


def test_a_call_cancelled_after_its_early_start_is_not_made(
    container: Container, workers: WorkerProcesses
) -> None:
    url = container.database_url
    with TargetServer() as target:
        workers.start()
        _ready(workers, 1)
        call = _submit_due_in(container, f"{target.url}/ok", 2.5)
        wait_until(lambda: _started_early(container, call), timeout=10, interval=0.02)
        cancelled = container.service_calls.cancel(TENANT, call.id, "changed my mind")
        assert cancelled.status == Status.CANCELLED
        wait_until(lambda: not outbox_rows(url, call.id, LEASES), timeout=10)  # withdrawn
        wait_until(lambda: utcnow() > call.due_at + timedelta(seconds=1), timeout=10)

    assert target.requests_for("/ok") == []  # the attempt was never made
    final = container.service_calls.get_call(TENANT, call.id)
    assert final.status == Status.CANCELLED


def test_a_stale_holder_of_the_start_message_leaves_the_early_start_alone(
    container: Container,
) -> None:
    """A timer whose lease on a ``start`` message ran out while another timer started the call
    early consumes its copy as stale: the other timer's ``execute`` message must survive."""
    url = container.database_url
    call = _submit_due_in(container, "http://127.0.0.1:9/never", 2.0)
    claimed = container.outbox.claim(START, 10, 5.0)
    assert [m.service_call_id for m in claimed] == [call.id]
    handed: list[Attempt] = []
    container.service_calls.start_due(claimed, hand_off=handed.extend)  # the first timer
    assert outbox_rows(url, call.id, LEASES) == [("execute", 1)]

    # the stale one: a timer holds a message without what its claim read (``Timer``)
    container.service_calls.start_due(list(map(unread, claimed)), hand_off=handed.extend)

    assert outbox_rows(url, call.id, LEASES) == [("execute", 1)]  # still there
    assert len(handed) == 1
    assert handed[0].message.id != claimed[0].id
