"""Worker liveness: a worker that stops beating is dead within seconds, and what it held is made
again at once by another worker (same Idempotency-Key), not when its leases end; a live worker
with a slow target keeps its leases; a worker stopping gracefully leaves.

Real worker processes (`duecall worker`), a real target.
"""

import signal
import time

import pytest

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.request import RequestSpec
from domain.service_call import ServiceCall, Status
from harness.target_server import TargetServer
from harness.worker_processes import WorkerProcesses, workers_fixture
from infrastructure.container import Container
from tests.support.db_queries import outbox_rows, rows
from tests.support.waiting import wait_terminal, wait_until

TENANT = "t-liveness"
DEAD_AFTER = 1.5
TIMEOUT_SECONDS = 20.0  # an attempt's lease: this and the grace (30 s), far beyond the test
SETTINGS = {
    "DUECALL_WORKER_HEARTBEAT_SECONDS": "0.5",
    "DUECALL_WORKER_DEAD_AFTER_SECONDS": str(DEAD_AFTER),
    "DUECALL_POLL_INTERVAL_SECONDS": "0.2",
    "DUECALL_SHUTDOWN_TIMEOUT_SECONDS": "2",
}
workers = workers_fixture(SETTINGS)
# the attempt's message while its request is out: the ``start`` row (its start deferred),
# or the ``execute`` row (its start recorded first)
deferring = workers_fixture({**SETTINGS, "DUECALL_RECORD_RUNNING_AFTER_SECONDS": "10"})
recording = workers_fixture({**SETTINGS, "DUECALL_RECORD_RUNNING_AFTER_SECONDS": "0"})


def _submit(container: Container, url: str) -> ServiceCall:
    request = RequestSpec("POST", url, body="{}", timeout_seconds=TIMEOUT_SECONDS)
    call, _ = container.service_calls.submit(
        SubmitServiceCall(TENANT, "liveness", request, utcnow())
    )
    return call


def _live_pids(container: Container) -> set[int]:
    return {worker.pid for worker in container.worker_registry.live()}


def _holder(container: Container, call: ServiceCall) -> int:
    """The pid of the worker the call's attempt is leased to."""
    [(worker_id,)] = rows(
        container.database_url,
        "SELECT worker_id FROM duecall_outbox WHERE service_call_id = %s",
        call.id,
    )
    [pid] = [w.pid for w in container.worker_registry.live() if w.id == worker_id]
    return pid


@pytest.mark.parametrize(("fleet", "kind"), [("deferring", "start"), ("recording", "execute")])
def test_a_killed_workers_attempt_is_made_again_within_seconds(
    container: Container, request: pytest.FixtureRequest, fleet: str, kind: str
) -> None:
    processes: WorkerProcesses = request.getfixturevalue(fleet)
    url = container.database_url
    with TargetServer() as target:
        started = {worker.pid: worker for worker in (processes.start(), processes.start())}
        wait_until(lambda: _live_pids(container) == set(started), timeout=30)
        call = _submit(container, f"{target.url}/slow/4")
        target.wait_for(1, path="/slow/4", timeout=20)
        assert outbox_rows(url, call.id, ("kind",)) == [(kind,)]
        doomed = started.pop(_holder(container, call))
        doomed.kill()
        killed_at = time.time()
        doomed.wait(timeout=10)

        first, second = target.wait_for(2, path="/slow/4", timeout=30)
        final = wait_terminal(container, TENANT, call.id, timeout=20)
        live = _live_pids(container)

    assert second.received_at - killed_at <= DEAD_AFTER + 2.5  # not the lease's 30-50 s
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == f"{call.id}:1"
    assert final.status == Status.SUCCEEDED
    assert final.attempt == 1
    assert live == set(started)  # the dead worker's row is gone
    assert outbox_rows(url, call.id) == []


def test_a_live_worker_with_a_slow_target_keeps_its_leases(
    container: Container, workers: WorkerProcesses
) -> None:
    with TargetServer() as target:
        started = [workers.start(), workers.start()]
        wait_until(lambda: len(_live_pids(container)) == 2, timeout=30)
        call = _submit(container, f"{target.url}/slow/5")  # > 3 x DEAD_AFTER
        final = wait_terminal(container, TENANT, call.id, timeout=30)
        time.sleep(DEAD_AFTER)  # a reaper that robbed it would have sent it again by now

    assert final.status == Status.SUCCEEDED
    assert len(target.requests_for("/slow/5")) == 1
    assert all(worker.poll() is None for worker in started)


def test_a_worker_stopping_gracefully_leaves(
    container: Container, workers: WorkerProcesses
) -> None:
    worker = workers.start()
    wait_until(lambda: worker.pid in _live_pids(container), timeout=30)
    [row] = [w for w in container.worker_registry.live() if w.pid == worker.pid]
    assert row.in_flight == 0
    assert row.silent_seconds < DEAD_AFTER

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0

    assert worker.pid not in _live_pids(container)
