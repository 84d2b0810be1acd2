"""Real `duecall worker` subprocesses against a test's database, all killed at the end.

    workers = workers_fixture({"DUECALL_MAX_DELIVERIES": "1"})  # in a test module

    def test_x(container: Container, workers: WorkerProcesses) -> None:
        first = workers.start()
        ...
        first.kill()  # SIGKILL, as a crash would

Each worker logs JSON to a file of its own in the test's tmp_path; the logs are printed when
the test ends (pytest shows them when it failed).
"""

import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from harness.processes import Managed, duecall_command, duecall_env, spawn
from infrastructure.container import Container


class WorkerProcesses:
    """Starts `duecall worker` subprocesses with ``settings`` (DUECALL_* variables)."""

    def __init__(
        self, database_url: str, log_dir: Path, settings: Mapping[str, str] | None = None
    ) -> None:
        self._env = duecall_env(database_url, settings)
        self._log_dir = log_dir
        self._started: list[Managed] = []

    def start(self, *command: str) -> subprocess.Popen[bytes]:
        """``duecall worker``, or another long-running command (``projections``, ``run``)."""
        command = command or ("worker",)
        worker = spawn(self._log_dir, f"{command[0]}-{len(self._started)}", command[0],
                       duecall_command(*command), self._env, new_session=False)
        self._started.append(worker)
        return worker.popen

    def kill_all(self) -> None:
        for worker in self._started:
            if worker.alive():
                worker.popen.kill()
            worker.popen.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name} ---\n" + path.read_text(errors="replace")[-4000:]
            for path in (process.log_path for process in self._started)
        )


def workers_fixture(
    settings: Mapping[str, str] | None = None,
) -> Callable[[Container, Path], Iterator[WorkerProcesses]]:
    """A `workers` fixture: worker processes with ``settings``, against the test's container's
    database; assign it to a module-level name (the fixture's name)."""

    @pytest.fixture
    def workers(container: Container, tmp_path: Path) -> Iterator[WorkerProcesses]:
        processes = WorkerProcesses(container.database_url, tmp_path, settings)
        try:
            yield processes
        finally:
            processes.kill_all()
            print(processes.logs())  # shown when the test failed

    return workers
