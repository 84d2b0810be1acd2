"""A worker killed mid-request loses only its lease: the attempt is made again, same key.

Real worker processes (`duecall worker`), SIGKILLed while the target is still answering.
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from uuid import UUID

import psycopg
import pytest

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.ids import execution_id_for
from domain.request import RequestSpec
from domain.service_call import ServiceCall, Status
from infrastructure.container import Container
from tests.support.target_server import TargetServer
from tests.support.waiting import wait_until

TENANT = "t-crash"
REPO_ROOT = Path(__file__).resolve().parents[2]
SLOW_PATH = "/slow/1.5"  # answers after 1.5 s: time enough to kill the worker mid-request
TIMEOUT_SECONDS = 2.5
GRACE_SECONDS = 1.0
LEASE_SECONDS = TIMEOUT_SECONDS + GRACE_SECONDS


class WorkerProcesses:
    """`duecall worker` subprocesses against the test database; all killed at the end."""

    def __init__(self, database_url: str, log_dir: Path) -> None:
        self._database_url = database_url
        self._log_dir = log_dir
        self._running: list[tuple[subprocess.Popen[bytes], BinaryIO]] = []

    def start(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUECALL_")}
        env.update(
            DATABASE_URL=self._database_url,
            DUECALL_EXECUTION_GRACE_SECONDS=str(GRACE_SECONDS),
            DUECALL_POLL_INTERVAL_SECONDS="0.2",
            DUECALL_LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )
        log = (self._log_dir / f"worker-{len(self._running)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-c", "from interfaces.cli import main; main()", "worker"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._running.append((process, log))
        return process

    def kill_all(self) -> None:
        for process, log in self._running:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            log.close()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:]
                         for p in sorted(self._log_dir.glob("worker-*.log")))


@pytest.fixture
def workers(container: Container, tmp_path: Path) -> Iterator[WorkerProcesses]:
    processes = WorkerProcesses(container.database_url, tmp_path)
    try:
        yield processes
    finally:
        processes.kill_all()
        print(processes.logs())  # shown when the test failed


def _rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def _topics(url: str, originator_id: UUID) -> list[str]:
    rows = _rows(
        url,
        "SELECT topic FROM duecall_events WHERE originator_id = %s ORDER BY originator_version",
        originator_id,
    )
    return [str(row[0]) for row in rows]


def _outbox(url: str, call_id: UUID) -> list[tuple[str, int]]:
    rows = _rows(
        url, "SELECT kind, claims FROM duecall_outbox WHERE service_call_id = %s", call_id
    )
    return [(str(kind), int(claims)) for kind, claims in rows]


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

        assert _outbox(url, call.id) == [("execute", 1)]  # leased, not lost
        assert container.service_calls.get_call(TENANT, call.id).status == Status.RUNNING
        # Started is recorded with the outcome: the leased message is the record meanwhile
        assert _topics(url, execution_id) == []

        workers.start()
        first, second = target.wait_for(2, path=SLOW_PATH, timeout=LEASE_SECONDS + 15)

        def finished() -> ServiceCall | None:
            state = container.service_calls.get_call(TENANT, call.id)
            return state if state.is_terminal else None

        final = wait_until(finished, timeout=15)
        deliveries = target.requests_for(SLOW_PATH)

    assert final.status == Status.SUCCEEDED
    assert final.attempt == 1
    assert len(deliveries) == 2
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == f"{call.id}:1"
    assert (second.method, second.body) == (first.method, first.body)
    # Not re-claimed while the first worker's lease could still be running.
    assert second.received_at - first.received_at >= LEASE_SECONDS - 0.5
    assert _topics(url, execution_id) == [
        "duecall:Execution.Started",
        "duecall:Execution.Succeeded",
    ]
    call_topics = _topics(url, call.id)
    assert call_topics.count("duecall:ServiceCall.Started") == 1
    assert call_topics[-1] == "duecall:ServiceCall.Succeeded"
    assert _outbox(url, call.id) == []
