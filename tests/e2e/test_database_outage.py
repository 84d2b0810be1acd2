"""End to end, on a private embedded PostgreSQL that the tests stop and start (issue 8).

* ``/readyz`` says 503 while the database is stopped and 200 once it is back; ``/healthz``
  stays 200 (the process is up);
* a write while the database is down is answered quickly with 503 problem+json and records
  nothing: the same Idempotency-Key creates the call once the database is back;
* a worker started while the database is down waits for it, then does its work;
* SIGTERM stops a worker within ``DUECALL_SHUTDOWN_TIMEOUT_SECONDS``: an attempt still at its
  (slow) target is handed back and another worker makes it again at once, with the same
  Idempotency-Key, instead of after its lease.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.api_keys import UNLIMITED, bearer
from harness.databases import EmbeddedServer
from harness.duecall_process import DuecallProcess
from harness.network import LOOPBACK_ALLOWLIST
from harness.target_server import TargetServer
from harness.worker_processes import WorkerProcesses
from tests.support.db_queries import event_count
from tests.support.problems import assert_problem
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.own_server, pytest.mark.slow]

SETTINGS = {"DUECALL_OUTBOUND_ALLOWLIST": LOOPBACK_ALLOWLIST}
UNREACHABLE = '"database_unreachable_at_start"'  # a worker's log line at each failed try
RETRIES_SEEN = 3  # tries a worker waiting for the database makes in its first second or so


@pytest.fixture(scope="module")
def private_server() -> Iterator[EmbeddedServer]:
    """An embedded server of this module's own (the tests stop it)."""
    server = EmbeddedServer.temporary("dc-outage-")
    server.start()
    try:
        yield server
    finally:
        server.remove()


@contextlib.contextmanager
def database_stopped(server: EmbeddedServer) -> Iterator[None]:
    server.stop()
    try:
        yield
    finally:
        server.start_again()


def ready(api: DuecallProcess) -> bool:
    return httpx.get(f"{api.url}/readyz", timeout=10).status_code == 200


def call(target: TargetServer, path: str, **request: Any) -> dict[str, Any]:
    return {"name": "outage", "request": {"method": "POST", "url": f"{target.url}{path}",
                                          **request}}


def test_readyz_is_503_while_the_database_is_stopped_and_200_after(
    private_server: EmbeddedServer,
) -> None:
    url = private_server.url
    with DuecallProcess(url, command="api", extra_env=SETTINGS) as api:
        assert ready(api)
        with database_stopped(private_server):
            answer = httpx.get(f"{api.url}/readyz", timeout=10)
            assert_problem(answer, 503)
            assert httpx.get(f"{api.url}/healthz", timeout=10).status_code == 200
        wait_until(lambda: ready(api), timeout=20, interval=0.2)


def test_a_write_while_the_database_is_down_is_503_and_records_nothing(
    private_server: EmbeddedServer,
) -> None:
    url = private_server.url
    with TargetServer() as target, DuecallProcess(url, command="api", extra_env=SETTINGS) as api:
        headers = bearer(api.tenant_key("outage", **UNLIMITED))
        with httpx.Client(base_url=api.url, headers=headers, timeout=60) as client:
            before = event_count(url)
            with database_stopped(private_server):
                began = time.monotonic()
                single = client.post("/v1/service-calls", json=call(target, "/one"),
                                     headers={"Idempotency-Key": "while-down"})
                batch = client.post("/v1/service-calls:batch", json={
                    "calls": [call(target, "/two"), call(target, "/three")]})
                took = time.monotonic() - began
            for answer in (single, batch):
                problem = assert_problem(answer, 503)
                assert "database" in problem["detail"]
                assert answer.headers["retry-after"]
                assert "Traceback" not in answer.text
            assert took < 30  # a pool timeout or two, not minutes of retries

            wait_until(lambda: ready(api), timeout=20, interval=0.2)
            assert event_count(url) == before  # nothing half-written
            again = client.post("/v1/service-calls", json=call(target, "/one"),
                                headers={"Idempotency-Key": "while-down"})
            assert again.status_code == 201, again.text  # created now: it was not before


def test_a_worker_started_while_the_database_is_down_waits_for_it(
    private_server: EmbeddedServer, tmp_path: Path
) -> None:
    url = private_server.url
    workers = WorkerProcesses(url, tmp_path, {**SETTINGS, "DUECALL_POLL_INTERVAL_SECONDS": "0.2"})
    try:
        with TargetServer() as target, DuecallProcess(url, command="api",
                                                      extra_env=SETTINGS) as api:
            headers = bearer(api.tenant_key("waiting", **UNLIMITED))
            with database_stopped(private_server):
                worker = workers.start()
                read_models = workers.start("projections", "run")
                wait_until(lambda: workers.logs().count(UNREACHABLE) >= 2 * RETRIES_SEEN,
                           timeout=30)
                assert worker.poll() is None, workers.logs()  # still there, waiting
                assert read_models.poll() is None, workers.logs()
            wait_until(lambda: ready(api), timeout=20, interval=0.2)
            submitted = httpx.post(f"{api.url}/v1/service-calls", headers=headers,
                                   json=call(target, "/after-the-outage"), timeout=30)
            assert submitted.status_code == 201, submitted.text
            target.wait_for(1, path="/after-the-outage", timeout=30)
            for name in ("worker-0.log", "projections-1.log"):
                assert UNREACHABLE in (tmp_path / name).read_text()
            assert read_models.poll() is None, workers.logs()  # and following the log now
    finally:
        workers.kill_all()


def test_sigterm_stops_a_worker_in_time_and_hands_back_its_attempt(
    private_server: EmbeddedServer, tmp_path: Path
) -> None:
    url = private_server.url
    shutdown_timeout = 2.0
    workers = WorkerProcesses(url, tmp_path, {
        **SETTINGS,
        "DUECALL_POLL_INTERVAL_SECONDS": "0.2",
        "DUECALL_SHUTDOWN_TIMEOUT_SECONDS": str(shutdown_timeout),
        "DUECALL_LOG_LEVEL": "INFO",
    })
    try:
        with TargetServer() as target, DuecallProcess(url, command="api",
                                                      extra_env=SETTINGS) as api:
            headers = bearer(api.tenant_key("stopping", **UNLIMITED))
            first = workers.start()
            # the target answers after 6 s; the attempt's lease is 30 s + the 30 s grace
            submitted = httpx.post(f"{api.url}/v1/service-calls", headers=headers,
                                   json=call(target, "/slow/6", timeout_seconds=30), timeout=30)
            assert submitted.status_code == 201, submitted.text
            call_id = submitted.json()["id"]
            target.wait_for(1, path="/slow/6", timeout=30)

            began = time.monotonic()
            first.send_signal(signal.SIGTERM)
            first.wait(timeout=shutdown_timeout + 10)
            stopped_in = time.monotonic() - began
            assert first.returncode == 0, workers.logs()
            assert stopped_in < shutdown_timeout + 3, workers.logs()
            assert '"execution_drained"' in workers.logs()

            workers.start()
            again = target.wait_for(2, path="/slow/6", timeout=20)  # not after 60 s
            assert again[1].headers["idempotency-key"] == again[0].headers["idempotency-key"]
            assert again[0].headers["idempotency-key"] == f"{call_id}:1"

            def finished() -> dict[str, Any] | None:
                state: dict[str, Any] = httpx.get(f"{api.url}/v1/service-calls/{call_id}",
                                                  headers=headers, timeout=10).json()
                return state if state["status"] in ("succeeded", "failed") else None

            final = wait_until(finished, timeout=30, interval=0.2)
            assert final["status"] == "succeeded"
            assert final["attempt"] == 1  # handed back, not failed and retried
    finally:
        workers.kill_all()
