"""The watchdog gives up on an attempt whose workers keep dying: it is failed as `lost`.

test_execution_worker_crash.py covers redelivery (a worker SIGKILLed mid-request; another worker
makes the same attempt again, same Idempotency-Key). Here deliveries are limited to one
(DUECALL_MAX_DELIVERIES=1): when the lease of the killed worker's attempt ends, the next worker
fails that execution as `lost` instead of sending it again, and the call retries by its policy
with attempt 2 (`lost` retries by default).

Real `duecall worker` subprocesses; the test's own container only submits (its workers never
start).
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
from domain.retry_policy import Jitter, RetryPolicy
from domain.service_call import ServiceCall, Status
from infrastructure.container import Container
from tests.support.target_server import TargetServer
from tests.support.waiting import wait_until

TENANT = "t-watchdog"
REPO_ROOT = Path(__file__).resolve().parents[2]
SLOW_PATH = "/slow/3"  # answers after 3 s: time enough to kill the worker mid-request
TIMEOUT_SECONDS = 5.0
GRACE_SECONDS = 1.0
LEASE_SECONDS = TIMEOUT_SECONDS + GRACE_SECONDS
WORKER_ENV = {
    "DUECALL_EXECUTION_GRACE_SECONDS": str(GRACE_SECONDS),
    "DUECALL_POLL_INTERVAL_SECONDS": "0.2",
    "DUECALL_MAX_DELIVERIES": "1",
}


class Workers:
    """`duecall worker` subprocesses against the test database; all killed at the end."""

    def __init__(self, database_url: str, log_dir: Path) -> None:
        self._database_url = database_url
        self._log_dir = log_dir
        self._running: list[tuple[subprocess.Popen[bytes], BinaryIO]] = []

    def start(self) -> subprocess.Popen[bytes]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DUECALL_") and k != "DATABASE_URL"
        }
        env.update(
            WORKER_ENV,
            DATABASE_URL=self._database_url,
            DUECALL_LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )
        log = (self._log_dir / f"worker-{len(self._running)}.log").open("wb")
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", "from interfaces.cli import main; main()", "worker"],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        except BaseException:
            log.close()
            raise
        self._running.append((process, log))
        return process

    def kill_all(self) -> None:
        for process, log in self._running:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            log.close()

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name} ---\n" + path.read_text(errors="replace")[-4000:]
            for path in sorted(self._log_dir.glob("worker-*.log"))
        )


@pytest.fixture
def workers(container: Container, tmp_path: Path) -> Iterator[Workers]:
    processes = Workers(container.database_url, tmp_path)
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


def _outbox(url: str, call_id: UUID) -> list[tuple[str, int, int]]:
    rows = _rows(
        url,
        "SELECT kind, attempt, claims FROM duecall_outbox WHERE service_call_id = %s",
        call_id,
    )
    return [(str(kind), int(attempt), int(claims)) for kind, attempt, claims in rows]


def test_an_attempt_whose_worker_died_is_failed_as_lost_and_retried_by_policy(
    container: Container, workers: Workers
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

        assert _outbox(url, call.id) == [("execute", 1, 1)]  # leased once, outcome never came
        assert container.service_calls.get_call(TENANT, call.id).status == Status.RUNNING

        workers.start()
        first, second = target.wait_for(2, path=SLOW_PATH, timeout=LEASE_SECONDS + 20)

        def finished() -> ServiceCall | None:
            state = container.service_calls.get_call(TENANT, call.id)
            return state if state.is_terminal else None

        final = wait_until(finished, timeout=15)
        deliveries = target.requests_for(SLOW_PATH)

    assert (final.status, final.attempt) == (Status.SUCCEEDED, 2)
    # Attempt 1 was not delivered again: the next delivery is attempt 2, with its own key.
    assert len(deliveries) == 2
    assert first.headers["idempotency-key"] == f"{call.id}:1"
    assert second.headers["idempotency-key"] == f"{call.id}:2"
    assert (second.method, second.body) == (first.method, first.body)
    # Not given up on while the first worker's lease could still be running.
    assert second.received_at - first.received_at >= LEASE_SECONDS - 0.5

    lost, retried = container.executions.for_call(call.id, 2)
    assert (lost.attempt, lost.outcome, lost.error_kind) == (1, "failed", "lost")
    assert lost.status_code is None
    assert "deliveries" in (lost.message or "")
    assert (retried.attempt, retried.outcome, retried.status_code) == (2, "succeeded", 200)
    assert _topics(url, execution_id_for(call.id, 1)) == [
        "duecall:Execution.Started",
        "duecall:Execution.Failed",
    ]
    call_topics = _topics(url, call.id)
    failed_at = call_topics.index("duecall:ServiceCall.AttemptFailed")
    assert call_topics[failed_at + 1] == "duecall:ServiceCall.Scheduled"  # retried by policy
    assert call_topics.count("duecall:ServiceCall.Started") == 2
    assert call_topics[-1] == "duecall:ServiceCall.Succeeded"
    assert _outbox(url, call.id) == []
