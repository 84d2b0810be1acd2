"""`duecall` processes started as a user starts them, and the group of them a run starts.

A process runs ``interfaces.cli:main`` with the interpreter running this code (so it works in
any virtualenv), in the repository root, its stdout and stderr in a log file of its own
(``Managed``). ``start_server`` puts a server on a free port and waits until it answers
``/healthz``; ``Processes`` holds the processes of a run (scripts/bench.py, scripts/chaos.py:
APIs, workers, read-model runners, the recording target) and stops them together.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console

from harness.network import HOST, LOOPBACK_ALLOWLIST, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
ENTRY = "from interfaces.cli import main; main()"
ADMIN_KEY = "test-admin-key"  # the tests' servers' DUECALL_ADMIN_KEY (runs make their own)
# limits are features with their own tests: a run sets them out of its way
UNLIMITED_IN_FLIGHT = {"DUECALL_HOST_MAX_IN_FLIGHT": "1000000",
                       "DUECALL_TENANT_MAX_IN_FLIGHT": "1000000"}

console = Console(stderr=True, highlight=False)


class HarnessError(RuntimeError):
    """A process did not come up or died, or a step of a run failed."""


def duecall_command(*args: str) -> list[str]:
    """The argv that runs the `duecall` CLI with these arguments."""
    return [sys.executable, "-c", ENTRY, *args]


def duecall_env(database_url: str, settings: Mapping[str, str] | None = None, *,
                admin_key: str = ADMIN_KEY, inherit_settings: bool = False) -> dict[str, str]:
    """The environment of a `duecall` subprocess: this one's, less DATABASE_URL and (unless
    ``inherit_settings``) its DUECALL_* settings, then ``database_url``, JSON logs, unbuffered
    output, ``admin_key``, the outbound guard admitting loopback targets, and ``settings``
    (DUECALL_* variables; they override these)."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "DUECALL_DATABASE_URL")
           and (inherit_settings or not key.startswith("DUECALL_"))}
    env.update(
        DATABASE_URL=database_url,
        DUECALL_LOG_FORMAT="json",
        DUECALL_ADMIN_KEY=admin_key,
        DUECALL_OUTBOUND_ALLOWLIST=LOOPBACK_ALLOWLIST,
        PYTHONUNBUFFERED="1",
    )
    env.update(settings or {})
    return env


# -- one process ----------------------------------------------------------------------------------


@dataclass
class Managed:
    """A started process: its name, role (api, worker, projections, target, ...), log file
    and, for a server, its port."""

    name: str
    role: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        return log_text(self.log_path)

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)


def log_text(path: Path) -> str:
    """Everything a process wrote to its log file so far."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def log_tail(path: Path, lines: int) -> str:
    return "\n".join(log_text(path).splitlines()[-lines:])


def spawn(log_dir: Path, name: str, role: str, argv: list[str], env: dict[str, str],
          port: int | None = None, *, new_session: bool = True) -> Managed:
    """Start ``argv`` in the repository root, its stdout and stderr appended to
    ``<log_dir>/<name>.log``; in a session of its own unless ``new_session`` is False (then a
    Ctrl-C in the terminal reaches it too)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=new_session)
    return Managed(name, role, popen, log_path, port)


def stop(proc: Managed, timeout: float) -> float | None:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL; the seconds it took to exit (None: it
    did not, and was killed)."""
    began = time.monotonic()
    if proc.alive():
        with contextlib.suppress(ProcessLookupError):
            proc.popen.send_signal(signal.SIGTERM)
    try:
        proc.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.popen.kill()
        proc.popen.wait(timeout=10)
        return None
    return time.monotonic() - began


def stop_all(procs: Sequence[Managed], timeout: float,
             on_kill: Callable[[Managed], None] | None = None) -> None:
    """SIGTERM every live one, wait up to ``timeout`` s in total, SIGKILL what is left (calling
    ``on_kill`` first)."""
    for proc in procs:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            if on_kill is not None:
                on_kill(proc)
            proc.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)


def wait_healthy(proc: Managed, timeout: float) -> None:
    """Until the server answers ``GET /healthz`` with 200 (HarnessError, with its log's tail,
    when it exits or ``timeout`` s pass)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while True:
            if not proc.alive():
                raise HarnessError(f"{proc.name} ({proc.role}, {proc.url}) exited with code "
                                   f"{proc.popen.returncode}:\n{proc.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{proc.url}/healthz").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise HarnessError(f"{proc.name} ({proc.role}, {proc.url}) did not answer "
                                   f"/healthz in {timeout:g} s:\n{proc.log_tail()}")
            time.sleep(0.1)


def start_server(spawn_at: Callable[[int], Managed], timeout: float, attempts: int = 3,
                 discard: Callable[[Managed], None] | None = None) -> Managed:
    """A server started by ``spawn_at(port)`` on a free port, answering ``/healthz``; started
    again on another port when another process took that one meanwhile. A start that failed
    is stopped and passed to ``discard``."""
    for attempt in range(1, attempts + 1):
        proc = spawn_at(free_port())
        try:
            wait_healthy(proc, timeout)
            return proc
        except HarnessError:
            stop(proc, 5.0)
            if discard is not None:
                discard(proc)
            port_taken = "address already in use" in proc.log_tail(60).lower()
            if not port_taken or attempt == attempts:
                raise
    raise HarnessError(f"no free port in {attempts} tries")


# -- the processes of a run -----------------------------------------------------------------------


class Processes:
    """The processes of a run, each logging to ``<log_dir>/<name>.log``, stopped together at
    the end; safe to use from several threads."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.all: list[Managed] = []
        self._lock = threading.Lock()

    def spawn(self, name: str, role: str, argv: list[str], env: dict[str, str],
              port: int | None = None) -> Managed:
        managed = spawn(self.log_dir, name, role, argv, env, port)
        with self._lock:
            self.all.append(managed)
        return managed

    def of(self, role: str) -> list[Managed]:
        with self._lock:
            return [p for p in self.all if p.role == role]

    def live(self, role: str) -> list[Managed]:
        return [p for p in self.of(role) if p.alive()]

    def check_alive(self) -> None:
        """HarnessError, with its log's tail, when a process has exited."""
        with self._lock:
            procs = list(self.all)
        for proc in procs:
            if not proc.alive():
                raise HarnessError(f"{proc.name} exited with code {proc.popen.returncode}; "
                                   f"log tail ({proc.log_path}):\n{proc.log_tail()}")

    def start_duecall(self, name: str, role: str, env: dict[str, str], *args: str) -> Managed:
        """``duecall <args>`` (a worker, a read-model runner, ...)."""
        return self.spawn(name, role, duecall_command(*args), env)

    def start_api(self, name: str, env: dict[str, str], timeout: float) -> Managed:
        """``duecall api`` on a free port, answering ``/healthz``."""

        def spawn_at(port: int) -> Managed:
            argv = duecall_command("api", "--host", HOST, "--port", str(port))
            return self.spawn(name, "api", argv, env, port)

        return start_server(spawn_at, timeout, discard=self._forget)

    def _forget(self, proc: Managed) -> None:
        with self._lock:
            self.all.remove(proc)

    def start_target(self, timeout: float) -> Managed:
        """The recording target (harness/recording_target.py) on a free port."""
        port_file = self.log_dir / "target.port"
        port_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "harness.recording_target", "--port", "0",
                "--port-file", str(port_file)]
        target = self.spawn("target", "target", argv, dict(os.environ))
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if not target.alive() or time.monotonic() > deadline:
                raise HarnessError(f"the recording target did not start:\n{target.log_tail()}")
            time.sleep(0.05)
        target.port = int(port_file.read_text())
        return target

    def stop_all(self, timeout: float = 15.0) -> None:
        """SIGTERM everything, wait up to ``timeout`` s in total, SIGKILL what is left."""

        def announce(proc: Managed) -> None:
            console.print(f"[yellow]{proc.name} did not stop in {timeout:g} s: SIGKILL[/]")

        with self._lock:
            procs = list(self.all)
        stop_all(procs, timeout, announce)
