"""Deferred starts (``DUECALL_RECORD_RUNNING_AFTER_SECONDS`` > 0): a first attempt's start is
recorded with its outcome, in one transaction, unless the attempt is still in flight a moment
after its request went out; then the call is recorded as running meanwhile, its ``execute``
message leased as usual. Either way the call's history holds one Started, before its outcome.

A worker that dies before the start is recorded leaves the ``start`` message to its lease
(30 s from its claim) unless its death is noticed sooner (test_worker_liveness.py); one that
stops gracefully hands it back, to be made again at once. Either way the attempt is made
again with the same Idempotency-Key.

Real worker processes (`duecall worker`), a real target.
"""

import signal

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.ids import execution_id_for
from domain.request import RequestSpec
from domain.service_call import ServiceCall, Status
from harness.target_server import TargetServer
from harness.worker_processes import WorkerProcesses, workers_fixture
from infrastructure.container import Container
from tests.support.db_queries import outbox_rows, rows, topics
from tests.support.waiting import wait_terminal, wait_until

TENANT = "t-deferred"
RUNNING_AFTER = 0.3
workers = workers_fixture({
    "DUECALL_RECORD_RUNNING_AFTER_SECONDS": str(RUNNING_AFTER),
    "DUECALL_POLL_INTERVAL_SECONDS": "0.2",
})
START_LEASE_SECONDS = 30.0  # a claimed ``start`` message's (infrastructure.outbox)
# workers that keep every start deferred while the test stops them
unrecorded = workers_fixture({
    "DUECALL_RECORD_RUNNING_AFTER_SECONDS": "10",
    "DUECALL_WORKER_DEAD_AFTER_SECONDS": "300",  # the lease alone (test_worker_liveness: sooner)
    "DUECALL_POLL_INTERVAL_SECONDS": "0.2",
    "DUECALL_SHUTDOWN_TIMEOUT_SECONDS": "1",
})


def _submit(container: Container, url: str) -> ServiceCall:
    request = RequestSpec("POST", url, body="{}", timeout_seconds=5)
    call, _ = container.service_calls.submit(
        SubmitServiceCall(TENANT, "deferred", request, utcnow())
    )
    return call


def _log(url: str, call: ServiceCall) -> list[tuple[str, int]]:
    """The call's and its first execution's events: (topic, transaction id), in log order."""
    found = rows(
        url,
        "SELECT topic, xmin::text::bigint FROM duecall_events WHERE originator_id = ANY(%s) "
        "ORDER BY notification_id",
        [call.id, execution_id_for(call.id, 1)],
    )
    return [(str(topic).removeprefix("duecall:"), int(xid)) for topic, xid in found]


def test_a_fast_attempt_records_its_start_with_its_outcome(
    container: Container, workers: WorkerProcesses
) -> None:
    url = container.database_url
    with TargetServer() as target:
        workers.start()
        call = _submit(container, f"{target.url}/ok")
        final = wait_terminal(container, TENANT, call.id, timeout=20)
        target.wait_for(1, path="/ok", timeout=5)

    assert final.status == Status.SUCCEEDED
    log = _log(url, call)
    assert [topic for topic, _ in log] == [
        "ServiceCall.Submitted",
        "Execution.Started",
        "ServiceCall.Started",
        "Execution.Succeeded",
        "ServiceCall.Succeeded",
    ]
    assert len({xid for _, xid in log[2:]}) == 1  # start and outcome: one transaction
    assert outbox_rows(url, call.id) == []


def test_a_slow_attempt_is_recorded_as_running_while_in_flight(
    container: Container, workers: WorkerProcesses
) -> None:
    url = container.database_url
    with TargetServer() as target:
        workers.start()
        call = _submit(container, f"{target.url}/slow/2")
        target.wait_for(1, path="/slow/2", timeout=20)
        running = wait_until(
            lambda: container.service_calls.get_call(TENANT, call.id).status == Status.RUNNING,
            timeout=RUNNING_AFTER + 1.5,
            interval=0.02,
        )
        assert running
        assert [kind for (kind,) in outbox_rows(url, call.id, ("kind",))] == ["execute"]
        final = wait_terminal(container, TENANT, call.id, timeout=20)

    assert final.status == Status.SUCCEEDED
    assert len(target.requests_for("/slow/2")) == 1
    topics = [topic for topic, _ in _log(url, call)]
    assert topics.count("ServiceCall.Started") == 1
    assert topics[-1] == "ServiceCall.Succeeded"
    assert outbox_rows(url, call.id) == []


def test_a_call_cancelled_while_its_attempt_is_in_flight_stays_cancelled(
    container: Container, workers: WorkerProcesses
) -> None:
    """Cancelled while its request is out (before or after its start is recorded), the call
    stays cancelled: the attempt's execution is recorded, its outcome changes nothing."""
    url = container.database_url
    with TargetServer() as target:
        workers.start()
        call = _submit(container, f"{target.url}/slow/1")
        target.wait_for(1, path="/slow/1", timeout=20)
        container.service_calls.cancel(TENANT, call.id, "changed my mind")
        wait_until(lambda: not outbox_rows(url, call.id), timeout=10)

    final = container.service_calls.get_call(TENANT, call.id)
    assert final.status == Status.CANCELLED
    assert [t for t, _ in _log(url, call)][-2:] == ["Execution.Started", "Execution.Succeeded"]
    assert len(target.requests_for("/slow/1")) == 1


def _deferred_in_flight(container: Container, url: str, call: ServiceCall) -> None:
    """The request is out, nothing about it recorded: the leased ``start`` message is the
    record."""
    assert outbox_rows(url, call.id, ("kind", "claims")) == [("start", 1)]
    assert container.service_calls.get_call(TENANT, call.id).status == Status.SCHEDULED
    assert topics(url, execution_id_for(call.id, 1)) == []


def _made_twice_and_recorded_once(
    container: Container, url: str, target: TargetServer, call: ServiceCall, path: str
) -> tuple[float, float]:
    """Both deliveries (same key), the call succeeded once; their arrival times."""
    first, second = target.wait_for(2, path=path, timeout=START_LEASE_SECONDS + 20)
    final = wait_terminal(container, TENANT, call.id, timeout=20)
    assert final.status == Status.SUCCEEDED
    assert final.attempt == 1
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == f"{call.id}:1"
    history = [topic for topic, _ in _log(url, call)]
    assert history.count("ServiceCall.Started") == history.count("Execution.Started") == 1
    assert history[-1] == "ServiceCall.Succeeded"
    assert outbox_rows(url, call.id) == []
    return first.received_at, second.received_at


def test_a_worker_killed_before_the_start_is_recorded_leaves_it_to_the_lease(
    container: Container, unrecorded: WorkerProcesses
) -> None:
    url = container.database_url
    with TargetServer() as target:
        first_worker = unrecorded.start()
        call = _submit(container, f"{target.url}/slow/2")
        target.wait_for(1, path="/slow/2", timeout=20)
        first_worker.kill()  # SIGKILL while the request is out
        first_worker.wait(timeout=10)
        _deferred_in_flight(container, url, call)

        unrecorded.start()
        first, second = _made_twice_and_recorded_once(container, url, target, call, "/slow/2")

    assert second - first >= START_LEASE_SECONDS - 2  # not before the lease (from its claim)


def test_a_worker_stopped_before_the_start_is_recorded_hands_it_back(
    container: Container, unrecorded: WorkerProcesses
) -> None:
    url = container.database_url
    with TargetServer() as target:
        first_worker = unrecorded.start()
        call = _submit(container, f"{target.url}/slow/3")
        target.wait_for(1, path="/slow/3", timeout=20)
        _deferred_in_flight(container, url, call)
        first_worker.send_signal(signal.SIGTERM)  # drains for 1 s, then hands back
        assert first_worker.wait(timeout=15) == 0
        assert outbox_rows(url, call.id, ("kind",)) == [("start",)]

        unrecorded.start()
        first, second = _made_twice_and_recorded_once(container, url, target, call, "/slow/3")

    assert second - first < START_LEASE_SECONDS / 2  # handed back: made again at once
