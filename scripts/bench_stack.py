"""The benchmark's stack (scripts/bench.py): its database (a fresh one on the embedded
PostgreSQL or on DATABASE_URL) and its processes (``duecall api``, ``duecall worker``, ``duecall
projections run``, the target), started as a user would start them. Just over 300 lines: the
database, the processes and the stack they make are one part, read together."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

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
from bench_proc import MACHINE, PostgresProcesses, cpu_seconds, machine_busy_seconds
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from rich.console import Console

console = Console(stderr=True, highlight=False)


class BenchError(RuntimeError):
    pass


# -- processes ------------------------------------------------------------------------------------


class Processes:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.all: list[Managed] = []

    def spawn(self, name: str, role: str, argv: list[str], env: dict[str, str],
              port: int | None = None) -> Managed:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        managed = spawn(self.log_dir, name, role, argv, env, port)
        self.all.append(managed)
        return managed

    def of(self, role: str) -> list[Managed]:
        return [p for p in self.all if p.role == role]

    def stop_all(self, timeout: float = 15.0) -> None:
        """SIGTERM everything, wait up to ``timeout`` s in total, SIGKILL what is left."""

        def announce(proc: Managed) -> None:
            console.print(f"[yellow]{proc.name} did not stop in {timeout:g} s: SIGKILL[/]")

        stop_all(self.all, timeout, announce)


def duecall_env(database_url: str, extra: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The duecall processes' environment, and the DUECALL_* part of it (for the record)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DUECALL_DATABASE_URL")}
    env.update(
        DATABASE_URL=database_url,
        DUECALL_LOG_LEVEL="WARNING",
        DUECALL_LOG_FORMAT="json",
        # limits are a feature with their own tests: keep them from shaping the figures
        DUECALL_HOST_MAX_IN_FLIGHT="1000000",
        DUECALL_TENANT_MAX_IN_FLIGHT="1000000",
        # the bench target listens on loopback, which the outbound guard refuses by default
        DUECALL_OUTBOUND_ALLOWLIST="127.0.0.1/32,::1/128,localhost",
        # the bench creates its tenants and their API keys through the admin API
        DUECALL_ADMIN_KEY=secrets.token_urlsafe(32),
        PYTHONUNBUFFERED="1",
    )
    apply_env_items(env, extra)
    shown = {k: v for k, v in sorted(env.items()) if k.startswith("DUECALL_")}
    shown["DUECALL_ADMIN_KEY"] = "(set, not recorded)"
    return env, shown


# -- the database ---------------------------------------------------------------------------------


@dataclass
class Database:
    server_url: str
    url: str
    name: str
    embedded_dir: Path | None
    started_embedded: bool

    @classmethod
    def create(cls, data_dir: Path) -> Database:
        external = os.environ.get("DATABASE_URL")
        embedded_dir: Path | None = None
        started = False
        if external:
            server_url = external
        else:
            from infrastructure.embedded_postgres import embedded_database_url

            embedded_dir = data_dir.expanduser().resolve()
            started = not _postmaster_running(embedded_dir)
            console.print(f"embedded Postgres in {embedded_dir}"
                          f"{' (starting)' if started else ' (running)'}")
            server_url = embedded_database_url(embedded_dir)
        name = f"duecall_bench_{datetime.now():%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:4]}"
        with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        params = conninfo_to_dict(server_url)
        params["dbname"] = name
        return cls(server_url, make_conninfo(**params), name, embedded_dir, started)  # type: ignore[arg-type]

    def drop(self) -> None:
        with psycopg.connect(self.server_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def stop_embedded(self, timeout: float = 30.0) -> None:
        """Stop the embedded server if this run started it (and make sure it is gone)."""
        if self.embedded_dir is None or not self.started_embedded:
            return
        pid = _postmaster_pid(self.embedded_dir)
        if pid is None:
            return
        from infrastructure.embedded_postgres import stop_embedded

        try:
            stop_embedded(self.embedded_dir)
        except Exception as error:  # an older stop_embedded, or pg_ctl failed: fast shutdown
            console.print(f"[yellow]stop_embedded failed ({error}); sending SIGINT[/]")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def _postmaster_running(data_dir: Path) -> bool:
    return _postmaster_pid(data_dir) is not None


def server_info(conn: psycopg.Connection[Any]) -> dict[str, str]:
    info = {}
    for setting in ("server_version", "fsync", "synchronous_commit", "shared_buffers",
                    "max_connections", "wal_level"):
        with contextlib.suppress(psycopg.Error):
            row = conn.execute(f"SHOW {setting}").fetchone()
            info[setting] = str(row[0]) if row else ""
    return info


# -- the stack ------------------------------------------------------------------------------------


@dataclass
class Stack:
    processes: Processes
    target: Managed
    apis: list[Managed]
    workers: list[Managed]
    postgres: PostgresProcesses
    db: Database
    env_shown: dict[str, str]
    admin_key: str
    api_keys: dict[str, str] = field(default_factory=dict)

    @property
    def target_url(self) -> str:
        return self.target.url

    def key_for(self, tenant: str) -> str:
        """An API key of ``tenant``, created (with the tenant) through the admin API on first
        use; its rate limit is as high as the API allows, so it never shapes a figure."""
        if tenant not in self.api_keys:
            self.api_keys[tenant] = issue_api_key(self.api_urls[0], self.admin_key, tenant)
        return self.api_keys[tenant]

    @property
    def api_urls(self) -> list[str]:
        return [a.url for a in self.apis]

    def check_alive(self) -> None:
        for proc in self.processes.all:
            if not proc.alive():
                raise BenchError(f"{proc.name} exited with code {proc.popen.returncode}; "
                                 f"log tail ({proc.log_path}):\n{proc.log_tail()}")

    def cpu(self) -> dict[str, float | None]:
        snapshot: dict[str, float | None] = {p.name: cpu_seconds(p.pid) for p in
                                             self.processes.all}
        snapshot["postgres"] = self.postgres.cpu()
        snapshot["bench"] = cpu_seconds(os.getpid())
        snapshot[MACHINE] = machine_busy_seconds()
        return snapshot


def start_target(processes: Processes, timeout: float) -> Managed:
    port_file = processes.log_dir / "target.port"
    port_file.unlink(missing_ok=True)
    argv = [sys.executable, str(REPO_ROOT / "scripts" / "bench_target.py"), "--port", "0",
            "--port-file", str(port_file)]
    target = processes.spawn("target", "target", argv, dict(os.environ))
    deadline = time.monotonic() + timeout
    while not port_file.exists():
        if not target.alive() or time.monotonic() > deadline:
            raise BenchError(f"the bench target did not start:\n{target.log_tail()}")
        time.sleep(0.05)
    target.port = int(port_file.read_text())
    return target


def start_api(processes: Processes, index: int, env: dict[str, str], timeout: float) -> Managed:
    """`duecall api` on a free port; retried on another port if that one was taken."""
    for _ in range(3):
        port = free_port()
        argv = [sys.executable, "-c", ENTRY, "api", "--host", HOST, "--port", str(port)]
        api = processes.spawn(f"api-{index}", "api", argv, env, port)
        try:
            wait_healthy(api, timeout)
            return api
        except BenchError:
            if "address already in use" not in api.log_tail().lower():
                raise
            processes.all.remove(api)
    raise BenchError(f"api-{index}: no free port after 3 tries")


def issue_api_key(api_url: str, admin_key: str, tenant: str) -> str:
    """A new API key of ``tenant`` (created if new), limited to 1,000,000 requests a second."""
    limits = {"rate_per_second": 1_000_000.0, "burst": 1_000_000}
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=10.0, trust_env=False) as client:
        response = client.post("/v1/admin/tenants", json={"name": tenant, **limits})
        if response.status_code == 409:  # the tenant exists: another key of it
            response = client.post(f"/v1/admin/tenants/{tenant}/keys", json=limits)
        if response.status_code != 201:
            raise BenchError(f"creating an API key of {tenant!r}: HTTP {response.status_code}: "
                             f"{response.text[:500]}")
        key: str = response.json()["key"]
        return key


def wait_healthy(api: Managed, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while True:
            if not api.alive():
                raise BenchError(f"{api.name} exited with code {api.popen.returncode}:\n"
                                 f"{api.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{api.url}/healthz").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise BenchError(f"{api.name} did not answer /healthz in {timeout:g} s:\n"
                                 f"{api.log_tail()}")
            time.sleep(0.1)


def start_stack(args: argparse.Namespace, processes: Processes, db: Database) -> Stack:
    env, shown = duecall_env(db.url, args.env)
    target = start_target(processes, args.start_timeout)
    console.print(f"target on {target.url} (pid {target.pid})")
    # The first API applies the migrations; the rest start once the schema is there.
    apis = [start_api(processes, 0, env, args.start_timeout)]
    worker_argv = [sys.executable, "-c", ENTRY, "worker"]
    if args.projection_procs:
        worker_argv.append("--no-projections")
    workers = [processes.spawn(f"worker-{i}", "worker", worker_argv, env)
               for i in range(args.worker_procs)]
    workers += [
        processes.spawn(f"projections-{i}", "projections",
                        [sys.executable, "-c", ENTRY, "projections", "run"], env)
        for i in range(args.projection_procs)
    ]
    apis += [start_api(processes, i, env, args.start_timeout) for i in range(1, args.api_procs)]
    with psycopg.connect(db.url, autocommit=True) as conn:
        postgres = PostgresProcesses.find(conn)
    stack = Stack(processes, target, apis, workers, postgres, db, shown, env["DUECALL_ADMIN_KEY"])
    time.sleep(0.5)
    stack.check_alive()
    console.print(f"api: {', '.join(f'{a.url} (pid {a.pid})' for a in apis)}; "
                  f"{', '.join(f'{w.name} (pid {w.pid})' for w in workers)}; "
                  f"postgres: {postgres.how}")
    return stack
