"""The chaos run's stack (scripts/chaos.py): its database (a fresh one on a private embedded
PostgreSQL that can be restarted, or on an external server) and its processes (``duecall
api``, the ``duecall worker`` processes, the recording target), started as a user would start
them, with the harness (harness.databases, harness.processes)."""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psycopg
from _harness import apply_env_items

from harness.api_keys import UNLIMITED, issue_tenant_key
from harness.databases import (
    EmbeddedServer,
    create_database,
    drop_database,
    server_settings,
    wait_reachable,
)
from harness.processes import (
    UNLIMITED_IN_FLIGHT,
    HarnessError,
    Managed,
    Processes,
    console,
    duecall_env,
    stop,
)

TENANT = "chaos"
CONNECTIONS_PER_PROCESS = 25  # pools of a duecall process at most (workers, read models, API)

ChaosError = HarnessError  # what fails a chaos run: the harness's error


# -- the database -----------------------------------------------------------------------------


class Database:
    """A fresh database on a private embedded server (restartable) or on an external one."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args
        self.embedded: EmbeddedServer | None = None
        self.server_url = ""
        self.url = ""
        self.name = ""

    def start(self) -> None:
        if self._args.database_url:
            self.server_url = self._args.database_url
        else:
            self.embedded = EmbeddedServer.temporary("dc-chaos-")
            self.server_url = self.embedded.start()
            # every worker process holds ~20 connections and replacements overlap: room for them
            with psycopg.connect(self.server_url, autocommit=True) as conn:
                conn.execute("ALTER SYSTEM SET max_connections = 400")
            self.embedded.stop()
            self.embedded.start_again()
        self.name, self.url = create_database(self.server_url, "duecall_chaos")

    @property
    def restartable(self) -> bool:
        return self.embedded is not None or bool(self._args.pg_restart_command)

    def restart(self, down_seconds: float) -> dict[str, float]:
        """Stop, wait, start; seconds of each step (``until_reachable``: from the start)."""
        began = time.monotonic()
        if self.embedded is not None:
            self.embedded.stop()
            stopped = time.monotonic()
            time.sleep(down_seconds)
            self.embedded.start_again()
        else:
            subprocess.run(self._args.pg_restart_command, shell=True, check=True, timeout=300)
            stopped = began
        up = wait_reachable(self.url, 120.0)
        return {"stop_s": stopped - began, "total_s": time.monotonic() - began,
                "until_reachable_s": up}

    def server_info(self) -> dict[str, str]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            info = server_settings(conn, ("server_version", "max_connections", "fsync",
                                          "synchronous_commit"))
        info["kind"] = "embedded (private, pgserver)" if self.embedded else "external"
        wanted = (self._args.workers + 2) * CONNECTIONS_PER_PROCESS
        if int(info.get("max_connections") or 0) < wanted:
            console.print(f"[yellow]max_connections is {info['max_connections']}: the run may "
                          f"need about {wanted} connections[/]")
        return info

    def close(self, keep: bool) -> None:
        if self.embedded is not None:
            if keep:
                self.embedded.stop()
            else:
                self.embedded.remove()
        elif self.name and not keep:
            drop_database(self.server_url, self.name)


# -- processes ----------------------------------------------------------------------------------


class Stack:
    """The recording target, the ``duecall api`` processes, the workers (started, and
    replaced) and the read-model processes, if any."""

    def __init__(self, args: argparse.Namespace, db: Database, log_dir: Path) -> None:
        self._args = args
        self.db = db
        self.processes = Processes(log_dir)
        self.env = self._env(log_dir)
        self.target: Managed | None = None
        self.api: Managed | None = None  # the first: the tenant's key is issued there
        self.apis: list[Managed] = []
        self.key = ""
        self._lock = threading.Lock()
        self._worker_count = 0

    def _env(self, log_dir: Path) -> dict[str, str]:
        env = duecall_env(self.db.url, {
            "DUECALL_DATA_DIR": str(log_dir / "unused-pgdata"),  # never used: DATABASE_URL
            "DUECALL_SECRET_KEY": base64.b64encode(os.urandom(32)).decode(),
            "DUECALL_LOG_LEVEL": "WARNING",
            # features with their own tests, kept from shaping this run: every call must end
            # by its retry policy alone
            "DUECALL_CIRCUIT_FAILURE_THRESHOLD": "1000000",
            **UNLIMITED_IN_FLIGHT,
        }, admin_key=f"chaos-admin-{uuid.uuid4().hex}")
        apply_env_items(env, self._args.env)
        return env

    @property
    def duecall_settings(self) -> dict[str, str]:
        hidden = ("DUECALL_SECRET_KEY", "DUECALL_ADMIN_KEY")
        return {k: v for k, v in sorted(self.env.items())
                if k.startswith("DUECALL_") and k not in hidden}

    @property
    def workers(self) -> list[Managed]:
        return self.processes.of("worker")

    def start(self) -> None:
        timeout = self._args.start_timeout
        self.target = self.processes.start_target(timeout)
        self.apis = [self.processes.start_api(f"api-{i}", self.env, timeout)
                     for i in range(self._args.apis)]
        self.api = self.apis[0]
        self.key = issue_tenant_key(self.api.url, TENANT, UNLIMITED,
                                    admin_key=self.env["DUECALL_ADMIN_KEY"])
        for i in range(self._args.read_model_procs):
            self.processes.start_duecall(f"read-models-{i}", "projections", self.env,
                                         "projections", "run")
        for _ in range(self._args.workers):
            self.start_worker()

    @property
    def readers(self) -> list[Managed]:
        return self.processes.of("projections")

    def start_worker(self) -> Managed:
        with self._lock:
            index = self._worker_count
            self._worker_count += 1
        args = ["worker", "--no-projections"] if self._args.read_model_procs else ["worker"]
        return self.processes.start_duecall(f"worker-{index}", "worker", self.env, *args)

    def live_workers(self) -> list[Managed]:
        return self.processes.live("worker")

    def terminate(self, proc: Managed, timeout: float) -> float | None:
        """SIGTERM; seconds until it exited (None: it did not, and was killed)."""
        return stop(proc, timeout)

    def stop_all(self) -> None:
        self.processes.stop_all(40)
