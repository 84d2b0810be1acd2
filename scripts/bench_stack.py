"""The benchmark's stack (scripts/bench.py): its database (a fresh one on the embedded
PostgreSQL or on DATABASE_URL) and its processes (``duecall api``, ``duecall worker``, ``duecall
projections run``, the recording target), started as a user would start them, with the
harness (harness.databases, harness.processes)."""

from __future__ import annotations

import argparse
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from _harness import apply_env_items
from bench_proc import MACHINE, PostgresProcesses, cpu_seconds, machine_busy_seconds

from harness.api_keys import UNLIMITED, issue_tenant_key
from harness.databases import EmbeddedServer, create_database, drop_database, server_settings
from harness.processes import (
    UNLIMITED_IN_FLIGHT,
    HarnessError,
    Managed,
    Processes,
    console,
    duecall_env,
)

BenchError = HarnessError  # what fails a benchmark run: the harness's error


def bench_env(database_url: str, extra: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The duecall processes' environment (the DUECALL_* settings of this process's own
    environment kept, then ``--env`` ``extra``), and its DUECALL_* part (for the record)."""
    settings = {"DUECALL_LOG_LEVEL": "WARNING", **UNLIMITED_IN_FLIGHT}
    env = duecall_env(database_url, settings, admin_key=secrets.token_urlsafe(32),
                      inherit_settings=True)
    apply_env_items(env, extra)
    shown = {k: v for k, v in sorted(env.items()) if k.startswith("DUECALL_")}
    shown["DUECALL_ADMIN_KEY"] = "(set, not recorded)"
    return env, shown


# -- the database ---------------------------------------------------------------------------------


@dataclass
class Database:
    """The run's own database, on DATABASE_URL's server or on the embedded one."""

    server_url: str
    url: str
    name: str
    embedded: EmbeddedServer | None

    @classmethod
    def create(cls, data_dir: Path) -> Database:
        """On DATABASE_URL's server if set, else on the embedded server in ``data_dir``
        (started if it is not running)."""
        external = os.environ.get("DATABASE_URL")
        embedded: EmbeddedServer | None = None
        if external:
            server_url = external
        else:
            embedded = EmbeddedServer(data_dir)
            running = embedded.pid is not None
            console.print(f"embedded Postgres in {embedded.data_dir}"
                          f"{' (running)' if running else ' (starting)'}")
            server_url = embedded.start()
        name, url = create_database(server_url, "duecall_bench")
        return cls(server_url, url, name, embedded)

    @property
    def embedded_dir(self) -> Path | None:
        return self.embedded.data_dir if self.embedded else None

    def drop(self) -> None:
        drop_database(self.server_url, self.name)

    def stop_embedded(self) -> None:
        """Stop the embedded server if this run started it."""
        if self.embedded is not None and self.embedded.started_here:
            self.embedded.stop()


def server_info(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """The database server's settings, for the record."""
    return server_settings(conn)


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
            self.api_keys[tenant] = issue_tenant_key(self.api_urls[0], tenant, UNLIMITED,
                                                     admin_key=self.admin_key)
        return self.api_keys[tenant]

    @property
    def api_urls(self) -> list[str]:
        return [a.url for a in self.apis]

    def check_alive(self) -> None:
        self.processes.check_alive()

    def cpu(self) -> dict[str, float | None]:
        snapshot: dict[str, float | None] = {p.name: cpu_seconds(p.pid) for p in
                                             self.processes.all}
        snapshot["postgres"] = self.postgres.cpu()
        snapshot["bench"] = cpu_seconds(os.getpid())
        snapshot[MACHINE] = machine_busy_seconds()
        return snapshot


def start_stack(args: argparse.Namespace, processes: Processes, db: Database) -> Stack:
    env, shown = bench_env(db.url, args.env)
    target = processes.start_target(args.start_timeout)
    console.print(f"target on {target.url} (pid {target.pid})")
    # The first API applies the migrations; the rest start once the schema is there.
    apis = [processes.start_api("api-0", env, args.start_timeout)]
    worker_args = ["worker", "--no-projections"] if args.projection_procs else ["worker"]
    workers = [processes.start_duecall(f"worker-{i}", "worker", env, *worker_args)
               for i in range(args.worker_procs)]
    workers += [processes.start_duecall(f"projections-{i}", "projections", env,
                                        "projections", "run")
                for i in range(args.projection_procs)]
    apis += [processes.start_api(f"api-{i}", env, args.start_timeout)
             for i in range(1, args.api_procs)]
    with psycopg.connect(db.url, autocommit=True) as conn:
        postgres = PostgresProcesses.find(conn)
    stack = Stack(processes, target, apis, workers, postgres, db, shown, env["DUECALL_ADMIN_KEY"])
    time.sleep(0.5)
    stack.check_alive()
    console.print(f"api: {', '.join(f'{a.url} (pid {a.pid})' for a in apis)}; "
                  f"{', '.join(f'{w.name} (pid {w.pid})' for w in workers)}; "
                  f"postgres: {postgres.how}")
    return stack
