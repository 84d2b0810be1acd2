"""The real duecall server, started as a user would: a `duecall serve` subprocess.

    with DuecallProcess(database_url) as server:
        httpx.get(f"{server.url}/healthz")
        ...
        print(server.log_text())

The process runs `interfaces.cli:main` with the interpreter running the tests (so it works in
any virtualenv), listens on a free port on 127.0.0.1, logs JSON to a temporary file, and is
stopped with SIGTERM (then SIGKILL after ``stop_timeout`` seconds) on exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from tests.support.target_server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
_HOST = "127.0.0.1"
_ENTRY = "from interfaces.cli import main; main()"
ADMIN_KEY = "test-admin-key"
LOOPBACK_ALLOWLIST = "127.0.0.1/32,::1/128,localhost"  # the tests' targets run on 127.0.0.1


def duecall_command(*args: str) -> list[str]:
    """The argv that runs the `duecall` CLI with these arguments."""
    return [sys.executable, "-c", _ENTRY, *args]


def duecall_env(database_url: str, settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a `duecall` subprocess: this one's, less any duecall settings, then
    ``database_url``, JSON logs, unbuffered output, the outbound guard admitting loopback
    targets, and ``settings`` (DUECALL_* variables; they override these)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DUECALL_") and key != "DATABASE_URL"
    }
    env.update(
        DATABASE_URL=database_url,
        DUECALL_LOG_FORMAT="json",
        DUECALL_ADMIN_KEY=ADMIN_KEY,
        DUECALL_OUTBOUND_ALLOWLIST=LOOPBACK_ALLOWLIST,
        PYTHONUNBUFFERED="1",
    )
    env.update(settings or {})
    return env


def issue_tenant_key(base_url: str, tenant: str, **limits: float) -> str:
    """A new API key of ``tenant`` from the server at ``base_url``, through the admin API
    (creating the tenant if it is new); ``limits``: rate_per_second, burst."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=base_url, headers=admin, timeout=10.0) as client:
        created = client.post("/v1/admin/tenants", json={"name": tenant, **limits})
        if created.status_code == 409:
            created = client.post(f"/v1/admin/tenants/{tenant}/keys", json=limits)
        created.raise_for_status()
        key: str = created.json()["key"]
        return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


_KEYS: dict[tuple[str, str], str] = {}


def tenant_headers(base_url: str, tenant: str) -> dict[str, str]:
    """Authorization headers of ``tenant`` for the server at ``base_url`` (one key per
    server and tenant, issued on first use)."""
    if (base_url, tenant) not in _KEYS:
        _KEYS[base_url, tenant] = issue_tenant_key(base_url, tenant)
    return bearer(_KEYS[base_url, tenant])


class DuecallStartError(RuntimeError):
    pass


class DuecallProcess:
    """A `duecall serve` (or `duecall api`) subprocess; use as a context manager."""

    def __init__(
        self,
        database_url: str,
        *,
        command: str = "serve",
        args: Sequence[str] = (),
        poll_interval_seconds: float = 0.2,
        extra_env: Mapping[str, str] | None = None,
        start_timeout: float = 20.0,
        stop_timeout: float = 10.0,
        start_attempts: int = 3,
    ) -> None:
        self.database_url = database_url
        self.command = command
        self.args = tuple(args)
        self.poll_interval_seconds = poll_interval_seconds
        self.extra_env = dict(extra_env or {})
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.start_attempts = start_attempts
        self.port: int | None = None
        self.returncode: int | None = None
        self.killed = False
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="duecall-e2e-"))
        self.log_path = self._dir / "duecall.log"

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> DuecallProcess:
        if self._process is not None:
            raise RuntimeError("DuecallProcess already started")
        for attempt in range(1, self.start_attempts + 1):
            self._spawn()
            try:
                self._wait_healthy()
                return self
            except DuecallStartError:
                port_taken = "address already in use" in self.log_text().lower()
                self.stop()
                if not port_taken or attempt == self.start_attempts:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """SIGTERM, wait up to ``stop_timeout`` seconds, then SIGKILL."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                process.kill()
                process.wait(timeout=5)
        self.returncode = process.returncode
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> DuecallProcess:
        try:
            return self.start()
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    # -- what tests use -----------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("DuecallProcess is not running")
        return f"http://{_HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("DuecallProcess is not running")
        return self._process.pid

    def tenant_key(self, tenant: str, **limits: float) -> str:
        """A new API key of ``tenant`` (created through the admin API if it is new)."""
        return issue_tenant_key(self.url, tenant, **limits)

    def log_text(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- internals ------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        return duecall_env(
            self.database_url,
            {"DUECALL_POLL_INTERVAL_SECONDS": str(self.poll_interval_seconds), **self.extra_env},
        )

    def _spawn(self) -> None:
        self.port = free_port()
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            duecall_command(self.command, *self.args, "--host", _HOST, "--port", str(self.port)),
            cwd=REPO_ROOT,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def _wait_healthy(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(timeout=1.0) as client:
            while True:
                if self._process.poll() is not None:
                    self._fail(f"exited with code {self._process.returncode} before it was up")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    self._fail(f"did not answer /healthz within {self.start_timeout:g} s")
                time.sleep(0.1)

    def _fail(self, what: str) -> None:
        tail = self.log_tail()
        print(f"--- duecall {self.command} log tail ({self.log_path}) ---\n{tail}", file=sys.stderr)
        raise DuecallStartError(f"duecall {self.command} on {self.url} {what}; log tail:\n{tail}")
