"""The chaos run's stack (scripts/chaos.py): its database (a private embedded PostgreSQL that
can be restarted, or a fresh database on an external server) and its processes (``duecall
api``, the ``duecall worker`` processes, the target), started as a user would start them."""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
from _harness import (
    ENTRY,
    HOST,
    REPO_ROOT,
    Managed,
    apply_env_items,
    free_port,
    spawn,
    stop_all,
)
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from rich.console import Console

LOOPBACK_ALLOWLIST = "127.0.0.1/32,::1/128,localhost"
TENANT = "chaos"
CONNECTIONS_PER_PROCESS = 25  # pools of a duecall process at most (workers, read models, API)

console = Console(stderr=True, highlight=False)


class ChaosError(RuntimeError):
    pass


# -- small helpers ----------------------------------------------------------------------------


def reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def wait_reachable(url: str, timeout: float) -> float:
    """Seconds until the database answers (ChaosError after ``timeout``)."""
    began = time.monotonic()
    while not reachable(url):
        if time.monotonic() - began > timeout:
            raise ChaosError(f"the database did not come back within {timeout:g} s")
        time.sleep(0.05)
    return time.monotonic() - began


# -- the database -----------------------------------------------------------------------------


class Database:
    """A private embedded server (restartable) or a fresh database on an external server."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args
        self.embedded_dir: Path | None = None
        self.server_url = ""
        self.url = ""
        self.name = ""

    def start(self) -> None:
        if self._args.database_url:
            self.server_url = self._args.database_url
            self.name = f"duecall_chaos_{datetime.now():%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:4]}"
            with psycopg.connect(self.server_url, autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            params = conninfo_to_dict(self.server_url)
            params["dbname"] = self.name
            self.url = make_conninfo(**params)  # type: ignore[arg-type]
            return
        from infrastructure.embedded_postgres import embedded_database_url

        self.embedded_dir = Path(tempfile.mkdtemp(prefix="dc-chaos-", dir="/tmp")) / "pg"
        self.url = self.server_url = embedded_database_url(self.embedded_dir)
        # every worker process holds ~20 connections and replacements overlap: room for them
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET max_connections = 400")
        self._stop()
        self._start()

    @property
    def restartable(self) -> bool:
        return self.embedded_dir is not None or bool(self._args.pg_restart_command)

    def restart(self, down_seconds: float) -> dict[str, float]:
        """Stop, wait, start; seconds of each step (``until_reachable``: from the start)."""
        began = time.monotonic()
        if self.embedded_dir is not None:
            self._stop()
            stopped = time.monotonic()
            time.sleep(down_seconds)
            self._start()
        else:
            subprocess.run(self._args.pg_restart_command, shell=True, check=True, timeout=300)
            stopped = began
        up = wait_reachable(self.url, 120.0)
        return {"stop_s": stopped - began, "total_s": time.monotonic() - began,
                "until_reachable_s": up}

    def _interrupt_postmaster(self) -> None:
        assert self.embedded_dir is not None
        try:
            pid = int((self.embedded_dir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGINT)
        except (OSError, ValueError, IndexError):
            return
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    def _stop(self) -> None:
        from infrastructure.embedded_postgres import stop_embedded

        assert self.embedded_dir is not None
        stop_embedded(self.embedded_dir)

    def _start(self) -> None:
        from infrastructure.embedded_postgres import start_embedded

        assert self.embedded_dir is not None
        start_embedded(self.embedded_dir)

    def server_info(self) -> dict[str, str]:
        info: dict[str, str] = {}
        with psycopg.connect(self.url, autocommit=True) as conn:
            for setting in ("server_version", "max_connections", "fsync", "synchronous_commit"):
                row = conn.execute(f"SHOW {setting}").fetchone()
                info[setting] = str(row[0]) if row else ""
        info["kind"] = "embedded (private, pgserver)" if self.embedded_dir else "external"
        wanted = (self._args.workers + 2) * CONNECTIONS_PER_PROCESS
        if int(info.get("max_connections") or 0) < wanted:
            console.print(f"[yellow]max_connections is {info['max_connections']}: the run may "
                          f"need about {wanted} connections[/]")
        return info

    def close(self, keep: bool) -> None:
        if self.embedded_dir is not None:
            try:
                self._stop()
            except Exception as error:  # pg_ctl failed: a fast shutdown by signal
                console.print(f"[yellow]stopping PostgreSQL: {error}; sending SIGINT[/]")
                self._interrupt_postmaster()
            if not keep:
                shutil.rmtree(self.embedded_dir.parent, ignore_errors=True)
            return
        if self.name and not keep:
            with psycopg.connect(self.server_url, autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# -- processes ----------------------------------------------------------------------------------


class Stack:
    def __init__(self, args: argparse.Namespace, db: Database, log_dir: Path) -> None:
        self._args = args
        self.db = db
        self.log_dir = log_dir
        self.all: list[Managed] = []
        self.workers: list[Managed] = []
        self._lock = threading.Lock()
        self._worker_count = 0
        self.env = self._env()
        self.target: Managed | None = None
        self.api: Managed | None = None
        self.key = ""

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("DUECALL_") and k != "DATABASE_URL"}
        env.update(
            DATABASE_URL=self.db.url,
            DUECALL_DATA_DIR=str(self.log_dir / "unused-pgdata"),  # never used: DATABASE_URL
            DUECALL_SECRET_KEY=base64.b64encode(os.urandom(32)).decode(),
            DUECALL_ADMIN_KEY=f"chaos-admin-{uuid.uuid4().hex}",
            DUECALL_LOG_FORMAT="json",
            DUECALL_LOG_LEVEL="WARNING",
            DUECALL_OUTBOUND_ALLOWLIST=LOOPBACK_ALLOWLIST,
            # features with their own tests, kept from shaping this run: every call must end
            # by its retry policy alone
            DUECALL_CIRCUIT_FAILURE_THRESHOLD="1000000",
            DUECALL_TENANT_MAX_IN_FLIGHT="1000000",
            DUECALL_HOST_MAX_IN_FLIGHT="1000000",
            PYTHONUNBUFFERED="1",
        )
        apply_env_items(env, self._args.env)
        return env

    @property
    def duecall_settings(self) -> dict[str, str]:
        hidden = ("DUECALL_SECRET_KEY", "DUECALL_ADMIN_KEY")
        return {k: v for k, v in sorted(self.env.items())
                if k.startswith("DUECALL_") and k not in hidden}

    def spawn(self, name: str, role: str, argv: list[str], env: dict[str, str],
              port: int | None = None) -> Managed:
        managed = spawn(self.log_dir, name, role, argv, env, port)
        with self._lock:
            self.all.append(managed)
        return managed

    def start(self) -> None:
        self.target = self._start_target()
        self.api = self._start_api()
        self.key = self._tenant_key()
        for _ in range(self._args.workers):
            self.start_worker()

    def _start_target(self) -> Managed:
        port_file = self.log_dir / "target.port"
        argv = [sys.executable, str(REPO_ROOT / "scripts" / "chaos_target.py"), "--port", "0",
                "--port-file", str(port_file)]
        target = self.spawn("target", "target", argv, dict(os.environ))
        deadline = time.monotonic() + self._args.start_timeout
        while not port_file.exists():
            if not target.alive() or time.monotonic() > deadline:
                raise ChaosError(f"the target did not start:\n{target.log_tail()}")
            time.sleep(0.05)
        target.port = int(port_file.read_text())
        return target

    def _start_api(self) -> Managed:
        for attempt in range(3):
            port = free_port()
            argv = [sys.executable, "-c", ENTRY, "api", "--host", HOST, "--port", str(port)]
            api = self.spawn(f"api-{attempt}", "api", argv, self.env, port)
            deadline = time.monotonic() + self._args.start_timeout
            with httpx.Client(timeout=2.0, trust_env=False) as client:
                while api.alive() and time.monotonic() < deadline:
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"{api.url}/healthz").status_code == 200:
                            return api
                    time.sleep(0.1)
            if api.alive() or "address already in use" not in api.log_tail().lower():
                raise ChaosError(f"the API did not come up:\n{api.log_tail()}")
        raise ChaosError("the API found no free port in 3 tries")

    def _tenant_key(self) -> str:
        assert self.api is not None
        admin = {"Authorization": f"Bearer {self.env['DUECALL_ADMIN_KEY']}"}
        with httpx.Client(base_url=self.api.url, headers=admin, timeout=30.0,
                          trust_env=False) as client:
            created = client.post("/v1/admin/tenants",
                                  json={"name": TENANT, "rate_per_second": 1e6,
                                        "burst": 1_000_000})
            if created.status_code != 201:
                raise ChaosError(f"creating the tenant: HTTP {created.status_code}: "
                                 f"{created.text[:300]}")
            key: str = created.json()["key"]
            return key

    def start_worker(self) -> Managed:
        with self._lock:
            index = self._worker_count
            self._worker_count += 1
        worker = self.spawn(f"worker-{index}", "worker", [sys.executable, "-c", ENTRY, "worker"],
                            self.env)
        with self._lock:
            self.workers.append(worker)
        return worker

    def live_workers(self) -> list[Managed]:
        with self._lock:
            return [w for w in self.workers if w.alive()]

    def forget(self, worker: Managed) -> None:
        with self._lock:
            if worker in self.workers:
                self.workers.remove(worker)

    def terminate(self, proc: Managed, timeout: float) -> float | None:
        """SIGTERM; seconds until it exited (None: it did not, and was killed)."""
        began = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            proc.popen.send_signal(signal.SIGTERM)
        try:
            proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(timeout=10)
            return None
        return time.monotonic() - began

    def stop_all(self) -> None:
        stop_all(self.all, 40)


