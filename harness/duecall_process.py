"""The real duecall server for a test, started as a user would: a `duecall serve` subprocess.

    with DuecallProcess(database_url) as server:
        httpx.get(f"{server.url}/healthz")
        ...
        print(server.log_text())

It listens on a free port on 127.0.0.1, logs JSON to a temporary file, has the admin key
``ADMIN_KEY`` and admits loopback targets (harness.processes.duecall_env), and is stopped with
SIGTERM (then SIGKILL after ``stop_timeout`` seconds) on exit.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from harness.api_keys import issue_tenant_key
from harness.network import HOST
from harness.processes import (
    Managed,
    duecall_command,
    duecall_env,
    log_tail,
    log_text,
    spawn,
    start_server,
    stop,
)


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
        start_timeout: float = 60.0,  # a loaded two-core machine starts a server slowly
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
        self._process: Managed | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="duecall-e2e-"))
        self.log_path = self._dir / "duecall.log"

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> DuecallProcess:
        if self._process is not None:
            raise RuntimeError("DuecallProcess already started")
        self._process = start_server(self._spawn_at, self.start_timeout, self.start_attempts)
        return self

    def stop(self) -> None:
        """SIGTERM, wait up to ``stop_timeout`` seconds, then SIGKILL."""
        process, self._process = self._process, None
        if process is None:
            return
        self.killed = stop(process, self.stop_timeout) is None
        self.returncode = process.popen.returncode

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
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("DuecallProcess is not running")
        return self._process.pid

    def tenant_key(self, tenant: str, **limits: float) -> str:
        """A new API key of ``tenant`` (created through the admin API if it is new)."""
        return issue_tenant_key(self.url, tenant, limits)

    def log_text(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return log_text(self.log_path)

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log_path, lines)

    # -- internals ------------------------------------------------------------------

    def _spawn_at(self, port: int) -> Managed:
        self.port = port
        env = duecall_env(
            self.database_url,
            {"DUECALL_POLL_INTERVAL_SECONDS": str(self.poll_interval_seconds), **self.extra_env},
        )
        argv = duecall_command(self.command, *self.args, "--host", HOST, "--port", str(port))
        return spawn(self._dir, "duecall", self.command, argv, env, port, new_session=False)
