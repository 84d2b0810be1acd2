#!/usr/bin/env python
"""Benchmark duecall end to end (issue 7): throughput, submit rate, timer precision, lag, CPU.

    .venv/bin/python scripts/bench.py            # the full run (20,000 calls; a few minutes)
    .venv/bin/python scripts/bench.py --quick    # a smoke run (2,000 calls; well under a minute)

duecall is started as a user would start it: ``duecall api`` (``--api-procs``, each on its own
port) and ``duecall worker`` (``--worker-procs``; workers and, unless ``--projection-procs``
asks for separate ``duecall projections run`` processes, the read models) as subprocesses, on
the embedded Postgres (``--data-dir``) or on ``DATABASE_URL``, in a fresh database
``duecall_bench_<timestamp>`` that is dropped afterwards (unless ``--keep``). A fast asyncio
target (scripts/bench_target.py) runs in its own process and records each request's arrival
time and ``Idempotency-Key``. The load generator is ``httpx.AsyncClient`` in this process.
Each phase submits as a tenant of its own, created with an API key through the admin API (the
processes get a random ``DUECALL_ADMIN_KEY`` per run); the keys' rate limits are the highest
the API allows, so they never shape a figure.

All phases run on the same stack and the same database, one after the other; before each,
the bench waits until the read models have folded everything recorded so far (the previous
phase's backlog; the wait is ``read_models_settled_s`` in the JSON):

1. throughput  ``--calls`` calls due now, POSTed to ``/v1/service-calls:batch`` in batches of
               ``--batch-size`` (``--batch-concurrency`` requests in flight); calls/s from the
               first submit until the read model (table ``duecall_rm_service_calls``, queried
               directly: every ``--sample-interval`` s near the end, less often while it is
               far) shows all of them terminal. Also: the
               batch-submit rate while the workers run, and, sampled every
               ``--sample-interval`` s, each projection's lag (log head - tracking position,
               in events, and the age of the oldest unfolded event, in ms, counted from
               when it was recorded; also from the event's own timestamp, for comparison).
2. submit      ``--submits`` single ``POST /v1/service-calls`` at ``--concurrency`` clients,
               calls due in one day (the workers have nothing to do); rate and p50/p99 latency.
3. batch       ``--batch-calls`` calls due in one day through the batch endpoint, workers
               idle: the batch-submit rate.
4. precision   ``--precision-calls`` calls due ``--precision-lead`` s ahead, spread evenly over
               ``--precision-spread`` s (explicit ``due_at``, one batch request); lateness =
               arrival at the target - due time, matched by ``Idempotency-Key: <id>:1``.

CPU seconds of every process (duecall processes, Postgres postmaster + backends when the
server's processes are visible on this machine, the target, this load generator) are read from
/proc per phase; peak RSS (VmHWM) at the end. Results: a table on stdout and JSON in
``bench-results/bench-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import secrets
import signal
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import psycopg
from _harness import (
    ENTRY,
    HOST,
    REPO_ROOT,
    HelpFormatter,
    Managed,
    apply_env_items,
    check_env_items,
    free_port,
    machine_info,
    percentile,
    rounded,
    spawn,
    stop_all,
)
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from rich.console import Console
from rich.table import Table

EVENTS_TABLE = "duecall_events"
HASHES_TABLE = "duecall_event_hashes"
TRACKING_TABLE = "duecall_projection_tracking"
READ_MODEL_TABLE = "duecall_rm_service_calls"
TERMINAL = ("succeeded", "failed", "cancelled")
FAR_FUTURE_SECONDS = 86_400.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MACHINE = "machine busy"

FULL = {"calls": 20_000, "submits": 5_000, "batch_calls": 10_000, "precision_calls": 200,
        "warmup": 200}
QUICK = {"calls": 2_000, "submits": 1_000, "batch_calls": 2_000, "precision_calls": 200,
         "warmup": 100}

TARGETS: dict[str, tuple[str, float, str]] = {
    # figure → (comparison, threshold, shown as)
    "throughput_calls_per_s": (">=", 1_000, "≥ 1,000 calls/s"),
    "submit_calls_per_s": (">=", 1_500, "≥ 1,500 calls/s"),
    "submit_p99_ms": ("<=", 50, "p99 ≤ 50 ms"),
    "batch_submit_calls_per_s": (">=", 10_000, "≥ 10,000 calls/s"),
    "precision_p50_ms": ("<=", 5, "p50 ≤ 5 ms"),
    "precision_p99_ms": ("<=", 10, "p99 ≤ 10 ms"),
    "projector_lag_p99_ms": ("<=", 500, "p99 ≤ 500 ms"),
    "peak_rss_mb_max": ("<=", 250, "≤ 250 MB"),
}

console = Console(stderr=True, highlight=False)
T = TypeVar("T")


class BenchError(RuntimeError):
    pass


# -- options --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench.py",
        description="Benchmark duecall end to end (issue 7). See the module docstring for "
        "how each figure is measured.",
        formatter_class=HelpFormatter,
    )
    size = parser.add_argument_group("workload (defaults: full run; --quick shrinks them)")
    size.add_argument("--quick", action="store_true",
                      help="smoke run: 2,000 calls, 1,000 submits, 2,000 batch calls")
    size.add_argument("--calls", type=int, default=None,
                      help=f"throughput: calls due now [{FULL['calls']:,}; quick "
                      f"{QUICK['calls']:,}]")
    size.add_argument("--submits", type=int, default=None,
                      help=f"single-call submits [{FULL['submits']:,}; quick "
                      f"{QUICK['submits']:,}]")
    size.add_argument("--batch-calls", type=int, default=None,
                      help=f"calls in the batch-submit phase, workers idle "
                      f"[{FULL['batch_calls']:,}; quick {QUICK['batch_calls']:,}]")
    size.add_argument("--precision-calls", type=int, default=None,
                      help=f"precision: calls [{FULL['precision_calls']}]")
    size.add_argument("--warmup", type=int, default=None,
                      help=f"calls run through the whole pipeline before measuring "
                      f"[{FULL['warmup']}; quick {QUICK['warmup']}]")
    size.add_argument("--precision-lead", type=float, default=2.0,
                      help="precision: seconds from submit to the first due time")
    size.add_argument("--precision-spread", type=float, default=1.0,
                      help="precision: due times spread evenly over this many seconds")
    size.add_argument("--concurrency", type=int, default=32,
                      help="single-call submit: concurrent clients")
    size.add_argument("--batch-size", type=int, default=1000,
                      help="calls per batch request (the API takes at most 1,000)")
    size.add_argument("--batch-concurrency", type=int, default=4,
                      help="batch requests in flight at once")
    size.add_argument("--phases", default="throughput,submit,batch,precision",
                      help="comma-separated phases to run, in this order")

    stack = parser.add_argument_group("the stack")
    stack.add_argument("--api-procs", type=int, default=1,
                       help="`duecall api` processes (each on its own port)")
    stack.add_argument("--worker-procs", type=int, default=1,
                       help="`duecall worker` processes (workers + projections)")
    stack.add_argument("--projection-procs", type=int, default=0,
                       help="0: the read models are kept by the worker processes (`duecall "
                       "worker`); N: workers run with --no-projections beside N `duecall "
                       "projections run` processes")
    stack.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".duecall" / "bench-pgdata",
                       help="embedded Postgres data directory (when DATABASE_URL is unset)")
    stack.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                       help="extra environment for the duecall processes (repeatable), e.g. "
                       "--env DUECALL_BATCH_SIZE=1000")
    stack.add_argument("--client", choices=("aiohttp", "httpx"), default="aiohttp",
                       help="load generator's httpx transport: httpx-aiohttp or httpx's own")
    stack.add_argument("--keep", action="store_true",
                       help="keep the database and leave the embedded server running (by "
                       "default the database is dropped, and the embedded server stopped if "
                       "this run started it)")

    run = parser.add_argument_group("measuring and output")
    run.add_argument("--sample-interval", type=float, default=0.1,
                     help="seconds between read-model / projector-lag samples")
    run.add_argument("--timeout", type=float, default=900.0,
                     help="seconds any one phase may take before the run is failed")
    run.add_argument("--start-timeout", type=float, default=60.0,
                     help="seconds each process may take to come up")
    run.add_argument("--out", type=Path, default=None,
                     help="JSON path [bench-results/bench-<timestamp>.json]")
    run.add_argument("--no-progress", action="store_true", help="no live progress display")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phases) - {"throughput", "submit", "batch", "precision"}
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if args.projection_procs < 0:
        parser.error("--projection-procs must be 0 or more")
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be 1..1000")
    for name in ("calls", "submits", "batch_calls", "precision_calls", "api_procs",
                 "worker_procs", "concurrency", "batch_concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    check_env_items(parser, args.env)
    return args


# -- small helpers --------------------------------------------------------------------------------


def run_async(coro: Awaitable[T]) -> T:
    """Run a coroutine on a fresh event loop (uvloop when installed)."""
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop

    async def wrapper() -> T:
        return await coro

    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(wrapper())


def load_generator(kind: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    timeout = httpx.Timeout(120.0)
    if kind == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport(limits=limits, trust_env=False)
        return httpx.AsyncClient(transport=transport, limits=limits, timeout=timeout,
                                 trust_env=False)
    return httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False)


# -- /proc --------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()  # fields from 3 (state) on


def cpu_seconds(pid: int, *, waited_children: bool = False) -> float | None:
    """utime + stime of a process (all its threads); plus its waited-for children's."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    ticks = int(fields[11]) + int(fields[12])
    if waited_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def children_of(ppid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and parent_of(int(entry.name)) == ppid:
            found.append(int(entry.name))
    return found


def machine_busy_seconds() -> float | None:
    """CPU seconds all CPUs spent busy since boot (/proc/stat: all but idle and iowait)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS


def status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@dataclass
class PostgresProcesses:
    """The server's postmaster, when its processes are visible here (else CPU is n/a)."""

    postmaster: int | None
    how: str

    def cpu(self) -> float | None:
        """Postmaster (with the backends it has reaped) plus every live child process."""
        if self.postmaster is None:
            return None
        own = cpu_seconds(self.postmaster, waited_children=True)
        if own is None:
            return None
        return own + sum(cpu_seconds(c) or 0.0 for c in children_of(self.postmaster))

    @classmethod
    def find(cls, conn: psycopg.Connection[Any]) -> PostgresProcesses:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        backend = int(row[0]) if row else 0
        postmaster = parent_of(backend) if backend else None
        if postmaster and process_name(postmaster).startswith(("postgres", "postmaster")):
            return cls(postmaster, f"postmaster pid {postmaster} (parent of backend {backend})")
        return cls(None, "server processes not visible on this machine: CPU n/a")


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


# -- load generation ------------------------------------------------------------------------------


def call_payload(target_url: str, index: int, *, due_at: datetime | None = None,
                 delay_seconds: float | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": "bench",
        "request": {"method": "POST", "url": f"{target_url}/hook", "body": {"n": index},
                    "timeout_seconds": 10},
    }
    if due_at is not None:
        payload["due_at"] = due_at.isoformat()
    if delay_seconds is not None:
        payload["delay_seconds"] = delay_seconds
    return payload


@dataclass
class Submitted:
    ids: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: float = 0.0  # time.monotonic()
    started_wall: float = 0.0  # time.time()
    finished: float = 0.0

    @property
    def seconds(self) -> float:
        return max(1e-9, self.finished - self.started)


async def post_batches(
    client: httpx.AsyncClient, api_urls: Sequence[str], api_key: str,
    payloads: Sequence[dict[str, Any]], batch_size: int, concurrency: int,
    progress: Callable[[int], None] | None = None,
) -> Submitted:
    """POST the payloads in batches, ``concurrency`` requests at once; ids in payload order."""
    batches = [payloads[i:i + batch_size] for i in range(0, len(payloads), batch_size)]
    results: list[list[str]] = [[] for _ in batches]
    out = Submitted()
    next_batch = 0
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}

    async def sender() -> None:
        nonlocal next_batch
        while next_batch < len(batches):
            index = next_batch
            next_batch += 1
            body = orjson.dumps({"calls": batches[index]})
            url = f"{api_urls[index % len(api_urls)]}/v1/service-calls:batch"
            began = time.perf_counter()
            response = await client.post(url, content=body, headers=headers)
            out.latencies_ms.append((time.perf_counter() - began) * 1000)
            if response.status_code != 201:
                raise BenchError(f"batch {index}: HTTP {response.status_code}: "
                                 f"{response.text[:500]}")
            results[index] = [item["id"] for item in orjson.loads(response.content)["items"]]
            if progress:
                progress(len(batches[index]))

    out.started, out.started_wall = time.monotonic(), time.time()
    await asyncio.gather(*(sender() for _ in range(min(concurrency, len(batches)))))
    out.finished = time.monotonic()
    out.ids = [i for batch in results for i in batch]
    return out


async def post_singles(
    client: httpx.AsyncClient, api_urls: Sequence[str], api_key: str, count: int,
    concurrency: int, make: Callable[[int], dict[str, Any]],
    progress: Callable[[int], None] | None = None,
) -> Submitted:
    out = Submitted()
    next_index = 0
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}

    async def client_loop() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            body = orjson.dumps(make(index))
            url = f"{api_urls[index % len(api_urls)]}/v1/service-calls"
            began = time.perf_counter()
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as error:
                out.errors.append(f"{type(error).__name__}: {error}")
                continue
            out.latencies_ms.append((time.perf_counter() - began) * 1000)
            if response.status_code == 201:
                out.ids.append(orjson.loads(response.content)["id"])
            else:
                out.errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
            if progress and index % 100 == 0:
                progress(100)

    out.started, out.started_wall = time.monotonic(), time.time()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    out.finished = time.monotonic()
    return out


def submit_batches(args: argparse.Namespace, stack: Stack, tenant: str,
                   payloads: Sequence[dict[str, Any]], progress: Callable[[int], None] | None
                   ) -> Submitted:
    """POST ``payloads`` as ``tenant`` (with its key: ``stack.key_for`` issues it before the
    first batch is timed, if the phase did not already)."""
    api_key = stack.key_for(tenant)

    async def go() -> Submitted:
        connections = args.batch_concurrency * len(stack.apis)
        async with load_generator(args.client, connections) as client:
            return await post_batches(client, stack.api_urls, api_key, payloads,
                                      args.batch_size, args.batch_concurrency, progress)

    return run_async(go())


# -- reading results back -------------------------------------------------------------------------


def status_counts(conn: psycopg.Connection[Any], tenant: str) -> dict[str, int]:
    rows = conn.execute(
        f"SELECT status, count(*) FROM {READ_MODEL_TABLE} WHERE tenant_id = %s GROUP BY status",
        (tenant,),
    ).fetchall()
    return {str(status): int(n) for status, n in rows}


def wait_terminal(conn: psycopg.Connection[Any], tenant: str, expected: int, interval: float,
                  timeout: float, check: Callable[[], None],
                  progress: Callable[[int], None] | None = None) -> tuple[float, dict[str, int]]:
    """Poll the read model until ``expected`` calls of the tenant are terminal there: every
    ``interval`` s near the end, less often while the end is far (at the rate so far), so that
    counting the tenant's rows takes little of the machine the benchmark measures."""
    began = time.monotonic()
    deadline = began + timeout
    while True:
        counts = status_counts(conn, tenant)
        done = sum(counts.get(s, 0) for s in TERMINAL)
        now = time.monotonic()
        if progress:
            progress(done)
        if done >= expected:
            return now, counts
        if now > deadline:
            raise BenchError(f"{tenant}: only {done} of {expected} calls terminal in the read "
                             f"model after {timeout:g} s ({counts})")
        check()
        rate = done / (now - began) if done else 0.0
        wait = min(1.0, (expected - done) / rate / 4) if rate else interval
        time.sleep(max(0.0, max(interval, wait) - (time.monotonic() - now)))


def settle(conn: psycopg.Connection[Any], timeout: float, check: Callable[[], None]) -> float:
    """Wait until every read model has folded the log as it is now (the previous phase's
    events), so that a phase measures itself, not the backlog of the one before; seconds
    waited."""
    began = time.monotonic()
    target = head(conn)
    while True:
        row = conn.execute(f"SELECT min(notification_id) FROM {TRACKING_TABLE}").fetchone()
        if row is None or row[0] is None or int(row[0]) >= target:
            return round(time.monotonic() - began, 3)
        if time.monotonic() - began > timeout:
            raise BenchError(f"read models still behind position {target} after {timeout:g} s")
        check()
        time.sleep(0.1)


def head(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(f"SELECT coalesce(max(notification_id), 0) FROM {EVENTS_TABLE}").fetchone()
    return int(row[0]) if row else 0


def fetch_arrivals(target_url: str, since: int) -> tuple[list[list[Any]], int]:
    with httpx.Client(timeout=60.0, trust_env=False) as client:
        data = client.get(f"{target_url}/__records", params={"since": since}).json()
    return data["records"], int(data["next"])


def target_count(target_url: str) -> int:
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        return int(client.get(f"{target_url}/__count").json()["count"])


class LagSampler(threading.Thread):
    """Every ``interval`` s: log head, each projection's position, and the age of its oldest
    unfolded event (the event after its position; 0 when caught up), counted from when that
    event was recorded (``recorded_at``, set by the events table's trigger in the inserting
    transaction) and, for comparison, from the event's own timestamp (set when the aggregate
    changed in Python: for a batch submit, before the API validated and saved the batch)."""

    def __init__(self, url: str, interval: float) -> None:
        super().__init__(name="lag-sampler", daemon=True)
        self.url = url
        self.interval = interval
        self.stopped = threading.Event()
        self.samples: list[dict[str, Any]] = []
        self.error: str | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                next_at = time.monotonic()
                while not self.stopped.is_set():
                    self.samples.append(self._sample(conn))
                    next_at += self.interval
                    self.stopped.wait(max(0.0, next_at - time.monotonic()))
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"

    def _sample(self, conn: psycopg.Connection[Any]) -> dict[str, Any]:
        at = time.time()
        log_head = head(conn)
        positions = conn.execute(
            f"SELECT application_name, notification_id FROM {TRACKING_TABLE}"
        ).fetchall()
        lags = {}
        for name, position in positions:
            behind = max(0, log_head - int(position or 0))
            recorded, created = (self._ages(conn, int(position or 0) + 1, at) if behind
                                 else (0.0, 0.0))
            lags[str(name)] = (behind, recorded, created)
        return {"at": at, "head": log_head, "lags": lags}

    @staticmethod
    def _ages(conn: psycopg.Connection[Any], notification_id: int,
              now: float) -> tuple[float | None, float | None]:
        """Seconds since the event was recorded, and since its own timestamp."""
        row = conn.execute(
            f"SELECT extract(epoch FROM h.recorded_at), e.state FROM {EVENTS_TABLE} e "
            f"LEFT JOIN {HASHES_TABLE} h USING (originator_id, originator_version) "
            "WHERE e.notification_id = %s", (notification_id,)).fetchone()
        if not row:
            return None, None
        recorded = None if row[0] is None else max(0.0, now - float(row[0]))
        try:
            stamp = json.loads(bytes(row[1]))["timestamp"]
            text = stamp["_data_"] if isinstance(stamp, dict) else stamp
            return recorded, max(0.0, now - datetime.fromisoformat(text).timestamp())
        except (ValueError, KeyError, TypeError):
            return recorded, None

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)

    def summary(self) -> dict[str, Any]:
        per: dict[str, dict[str, Any]] = {}
        names = sorted({n for s in self.samples for n in s["lags"]})
        for name in names:
            events = [s["lags"][name][0] for s in self.samples if name in s["lags"]]
            ms = [s["lags"][name][1] * 1000 for s in self.samples
                  if name in s["lags"] and s["lags"][name][1] is not None]
            per[name] = {"p50_events": rounded(percentile(events, 50), 1),
                         "p99_events": rounded(percentile(events, 99), 1),
                         "max_events": max(events, default=None),
                         "p50_ms": rounded(percentile(ms, 50)),
                         "p99_ms": rounded(percentile(ms, 99)),
                         "max_ms": rounded(max(ms, default=None))}
        worst_events = [max((v[0] for v in s["lags"].values()), default=0) for s in self.samples]

        def worst_ms(index: int) -> list[float]:
            return [max(((v[index] or 0.0) for v in s["lags"].values()), default=0.0) * 1000
                    for s in self.samples]

        since_recorded, since_created = worst_ms(1), worst_ms(2)
        return {
            "samples": len(self.samples),
            "interval_s": self.interval,
            "worst_projection": {
                "p50_events": rounded(percentile(worst_events, 50), 1),
                "p99_events": rounded(percentile(worst_events, 99), 1),
                "p50_ms": rounded(percentile(since_recorded, 50)),
                "p99_ms": rounded(percentile(since_recorded, 99)),
                "max_ms": rounded(max(since_recorded, default=None)),
                "p50_ms_since_created": rounded(percentile(since_created, 50)),
                "p99_ms_since_created": rounded(percentile(since_created, 99)),
            },
            "projections": per,
            "error": self.error,
        }


# -- phases ---------------------------------------------------------------------------------------


class ProgressLike:
    """rich progress when on a terminal, else nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and console.is_terminal
        self._progress: Any = None

    def __enter__(self) -> ProgressLike:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(),
                                      console=console, transient=True)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def task(self, description: str, total: int) -> tuple[Callable[[int], None],
                                                            Callable[[int], None]]:
        """(advance by n, set completed to n) callbacks."""
        if self._progress is None:
            return (lambda _n: None), (lambda _n: None)
        task_id = self._progress.add_task(description, total=total)
        progress = self._progress
        return (lambda n: progress.advance(task_id, n)), (
            lambda n: progress.update(task_id, completed=n))


def measure(stack: Stack, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run a phase; add its wall time and each process's CPU seconds during it."""
    before, began = stack.cpu(), time.monotonic()
    result = run()
    wall = time.monotonic() - began
    after = stack.cpu()
    cpu: dict[str, float | None] = {}
    for name, start in before.items():
        end = after.get(name)
        cpu[name] = None if start is None or end is None else round(end - start, 3)
    busy = cpu.pop(MACHINE)
    ours = sum(v for v in cpu.values() if v is not None)
    stack.check_alive()
    return {**result, "wall_s": round(wall, 3), "cpu_s": cpu,
            "machine_busy_cpu_s": busy,
            "other_cpu_s": None if busy is None else round(max(0.0, busy - ours), 3)}


def warm_up(args: argparse.Namespace, stack: Stack, conn: psycopg.Connection[Any]) -> None:
    """Run calls through the whole pipeline (API, workers, target, projections) once."""
    tenant = "bench-warmup"
    payloads = [call_payload(stack.target_url, i) for i in range(args.warmup)]
    submit_batches(args, stack, tenant, payloads, None)
    _, counts = wait_terminal(conn, tenant, len(payloads), args.sample_interval,
                              min(args.timeout, 180.0), stack.check_alive)
    if counts.get("succeeded", 0) != len(payloads):
        raise BenchError(f"warm-up calls did not all succeed: {counts}")


def phase_throughput(args: argparse.Namespace, stack: Stack,
                     conn: psycopg.Connection[Any]) -> dict[str, Any]:
    tenant = "bench-throughput"
    stack.key_for(tenant)  # now, not inside the timed part
    payloads = [call_payload(stack.target_url, i) for i in range(args.calls)]
    arrivals_before = target_count(stack.target_url)
    head_before = head(conn)
    sampler = LagSampler(stack.db.url, args.sample_interval)
    with ProgressLike(not args.no_progress) as bars:
        advance, _ = bars.task("submitted (batch)", len(payloads))
        _, done = bars.task("terminal in read model", len(payloads))
        sampler.start()
        try:
            submitted = submit_batches(args, stack, tenant, payloads, advance)
            finished, counts = wait_terminal(conn, tenant, len(payloads), args.sample_interval,
                                             args.timeout, stack.check_alive, done)
        finally:
            sampler.stop()
    head_after = head(conn)
    row = conn.execute(f"SELECT extract(epoch FROM max(finished_at)) FROM {READ_MODEL_TABLE} "
                       "WHERE tenant_id = %s", (tenant,)).fetchone()
    last_finished = float(row[0]) if row and row[0] is not None else None
    records, _ = fetch_arrivals(stack.target_url, arrivals_before)
    keys = {f"{i}:1" for i in submitted.ids}
    mine = [r for r in records if r[1] in keys]
    seconds = finished - submitted.started
    return {
        "calls": len(payloads),
        "statuses": counts,
        "seconds": round(seconds, 3),
        "calls_per_s": round(len(payloads) / seconds, 1),
        "event_store_calls_per_s": (
            round(len(payloads) / (last_finished - submitted.started_wall), 1)
            if last_finished else None),
        "batch_submit_seconds": round(submitted.seconds, 3),
        "batch_submit_calls_per_s": round(len(payloads) / submitted.seconds, 1),
        "batch_latency_ms": {"p50": rounded(percentile(submitted.latencies_ms, 50)),
                             "p99": rounded(percentile(submitted.latencies_ms, 99))},
        "target_arrivals": len(mine),
        "target_distinct_calls": len({r[1] for r in mine}),
        "last_arrival_after_s": (round(max(r[0] for r in mine) - submitted.started_wall, 3)
                                 if mine else None),
        "events": head_after - head_before,
        "events_per_call": round((head_after - head_before) / len(payloads), 2),
        "projector_lag": sampler.summary(),
    }


def phase_submit(args: argparse.Namespace, stack: Stack,
                 conn: psycopg.Connection[Any]) -> dict[str, Any]:
    tenant = "bench-submit"
    api_key = stack.key_for(tenant)

    def make(index: int) -> dict[str, Any]:
        return call_payload(stack.target_url, index, delay_seconds=FAR_FUTURE_SECONDS)

    async def go(advance: Callable[[int], None]) -> Submitted:
        async with load_generator(args.client, args.concurrency) as client:
            return await post_singles(client, stack.api_urls, api_key, args.submits,
                                      args.concurrency, make, advance)

    with ProgressLike(not args.no_progress) as bars:
        advance, _ = bars.task("submitted (single)", args.submits)
        out = run_async(go(advance))
    if out.errors:
        console.print(f"[yellow]{len(out.errors)} submit errors, first: {out.errors[0]}[/]")
    return {
        "calls": args.submits,
        "concurrency": args.concurrency,
        "created": len(out.ids),
        "errors": len(out.errors),
        "first_errors": out.errors[:5],
        "seconds": round(out.seconds, 3),
        "calls_per_s": round(len(out.ids) / out.seconds, 1),
        "latency_ms": {q: rounded(percentile(out.latencies_ms, p)) for q, p in
                       (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))},
    }


def phase_batch(args: argparse.Namespace, stack: Stack,
                conn: psycopg.Connection[Any]) -> dict[str, Any]:
    tenant = "bench-batch"
    payloads = [call_payload(stack.target_url, i, delay_seconds=FAR_FUTURE_SECONDS)
                for i in range(args.batch_calls)]
    with ProgressLike(not args.no_progress) as bars:
        advance, _ = bars.task("submitted (batch, due in a day)", len(payloads))
        out = submit_batches(args, stack, tenant, payloads, advance)
    return {
        "calls": len(payloads),
        "batch_size": args.batch_size,
        "batch_concurrency": args.batch_concurrency,
        "seconds": round(out.seconds, 3),
        "calls_per_s": round(len(payloads) / out.seconds, 1),
        "batch_latency_ms": {"p50": rounded(percentile(out.latencies_ms, 50)),
                             "p99": rounded(percentile(out.latencies_ms, 99))},
    }


def phase_precision(args: argparse.Namespace, stack: Stack,
                    conn: psycopg.Connection[Any]) -> dict[str, Any]:
    tenant = "bench-precision"
    stack.key_for(tenant)  # now, not between computing the due times and submitting
    n = args.precision_calls
    since = target_count(stack.target_url)
    first_due = time.time() + args.precision_lead
    step = args.precision_spread / n
    dues = [first_due + i * step for i in range(n)]
    payloads = [call_payload(stack.target_url, i, due_at=datetime.fromtimestamp(due, UTC))
                for i, due in enumerate(dues)]
    # one request of up to 1,000 calls (or several, at --batch-size)
    out = submit_batches(args, stack, tenant, payloads, None)
    submitted_by = time.time()
    due_by_key = {f"{call_id}:1": due for call_id, due in zip(out.ids, dues, strict=True)}
    arrivals: dict[str, float] = {}
    duplicates = 0
    deadline = time.monotonic() + args.precision_lead + args.precision_spread + 60.0
    with ProgressLike(not args.no_progress) as bars:
        _, done = bars.task("precision calls arrived", n)
        while len(arrivals) < n:
            if time.monotonic() > deadline:
                raise BenchError(f"precision: only {len(arrivals)} of {n} calls arrived")
            stack.check_alive()
            time.sleep(0.2)
            records, since = fetch_arrivals(stack.target_url, since)
            for arrival, key, *_ in records:
                if key in due_by_key:
                    if key in arrivals:
                        duplicates += 1
                    else:
                        arrivals[key] = float(arrival)
            done(len(arrivals))
    lateness = [(arrivals[k] - due_by_key[k]) * 1000 for k in arrivals]
    return {
        "calls": n,
        "lead_s": args.precision_lead,
        "spread_s": args.precision_spread,
        "submit_seconds": round(out.seconds, 3),
        "submitted_before_first_due_s": round(first_due - submitted_by, 3),
        "arrived": len(arrivals),
        "duplicates": duplicates,
        "early": sum(1 for v in lateness if v < 0),
        "lateness_ms": {q: rounded(percentile(lateness, p)) for q, p in
                        (("min", 0), ("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
        "lateness_mean_ms": rounded(statistics.fmean(lateness)) if lateness else None,
        "lateness_by_due_ms": [rounded((arrivals[k] - due) * 1000) if k in arrivals else None
                               for k, due in due_by_key.items()],  # in due order
    }


PHASES: dict[str, Callable[[argparse.Namespace, Stack, psycopg.Connection[Any]],
                           dict[str, Any]]] = {
    "throughput": phase_throughput,
    "submit": phase_submit,
    "batch": phase_batch,
    "precision": phase_precision,
}


# -- the run --------------------------------------------------------------------------------------


def figures_of(phases: dict[str, dict[str, Any]],
               processes: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    def get(phase: str, *path: str) -> float | None:
        value: Any = phases.get(phase)
        for key in path:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return float(value) if isinstance(value, int | float) else None

    duecall_rss = [p["peak_rss_mb"] for p in processes.values()
                   if p["role"] in ("api", "worker", "projections")
                   and p.get("peak_rss_mb") is not None]
    lag = ("throughput", "projector_lag", "worst_projection")
    return {
        "throughput_calls_per_s": get("throughput", "calls_per_s"),
        "batch_submit_calls_per_s": get("batch", "calls_per_s"),
        "batch_submit_during_throughput_calls_per_s": get("throughput",
                                                          "batch_submit_calls_per_s"),
        "submit_calls_per_s": get("submit", "calls_per_s"),
        "submit_p50_ms": get("submit", "latency_ms", "p50"),
        "submit_p99_ms": get("submit", "latency_ms", "p99"),
        "precision_p50_ms": get("precision", "lateness_ms", "p50"),
        "precision_p95_ms": get("precision", "lateness_ms", "p95"),
        "precision_p99_ms": get("precision", "lateness_ms", "p99"),
        "projector_lag_p50_ms": get(*lag, "p50_ms"),
        "projector_lag_p99_ms": get(*lag, "p99_ms"),
        "projector_lag_p50_events": get(*lag, "p50_events"),
        "projector_lag_p99_events": get(*lag, "p99_events"),
        "projector_lag_p50_ms_since_created": get(*lag, "p50_ms_since_created"),
        "projector_lag_p99_ms_since_created": get(*lag, "p99_ms_since_created"),
        "cpu_ms_per_call_total": get("throughput", "cpu_ms_per_call", "total"),
        "peak_rss_mb_max": max(duecall_rss) if duecall_rss else None,
    }


def per_call_cpu(throughput: dict[str, Any]) -> None:
    """CPU ms per call in the throughput phase, per process and in total (where known)."""
    calls = throughput["calls"]
    per = {name: (None if s is None else round(s * 1000 / calls, 3))
           for name, s in throughput["cpu_s"].items()}
    known = [s for s in throughput["cpu_s"].values() if s is not None]
    per["total"] = round(sum(known) * 1000 / calls, 3)
    throughput["cpu_ms_per_call"] = per
    throughput["cpu_utilisation"] = {
        name: (None if s is None else round(s / throughput["wall_s"], 2))
        for name, s in throughput["cpu_s"].items()
    }


def log_problems(proc: Managed) -> dict[str, Any]:
    counts: dict[str, int] = {}
    first: list[str] = []
    try:
        lines = proc.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        level = ""
        with contextlib.suppress(ValueError):
            level = str(json.loads(line).get("level", "")).lower()
        if not level and ("Traceback" in line or "ERROR" in line):
            level = "error"
        if level in ("warning", "error", "critical", "exception"):
            counts[level] = counts.get(level, 0) + 1
            if len(first) < 5:
                first.append(line[:400])
    return {"counts": counts, "first": first} if counts else {}


def run(args: argparse.Namespace, result: dict[str, Any], log_dir: Path) -> None:
    db = Database.create(args.data_dir)
    result["database"] = {"mode": "embedded" if db.embedded_dir else "DATABASE_URL",
                          "name": db.name, "kept": args.keep,
                          "data_dir": str(db.embedded_dir) if db.embedded_dir else None}
    processes = Processes(log_dir)
    try:
        with psycopg.connect(db.url, autocommit=True) as conn:
            result["machine"]["postgres"] = server_info(conn)
        stack = start_stack(args, processes, db)
        result["config"]["duecall_env"] = stack.env_shown
        result["postgres_cpu"] = stack.postgres.how
        with psycopg.connect(db.url, autocommit=True) as conn:
            console.print(f"warm-up: {args.warmup} calls through the pipeline")
            warm_up(args, stack, conn)
            for name in args.phases:
                console.print(f"[bold]phase {name}[/]")
                phase = PHASES[name]
                settled = settle(conn, args.timeout, stack.check_alive)
                outcome = measure(stack, functools.partial(phase, args, stack, conn))
                outcome["read_models_settled_s"] = settled
                if name == "throughput":
                    per_call_cpu(outcome)
                result["phases"][name] = outcome
                console.print(f"  {summary_line(name, outcome)}")
        result["processes"] = process_report(stack, result["phases"])
    finally:
        if processes.all and "processes" not in result:
            result["processes"] = {p.name: {"role": p.role, "pid": p.pid,
                                            "peak_rss_mb": _hwm_mb(p.pid)}
                                   for p in processes.all}
        processes.stop_all()
        for proc in processes.all:
            problems = log_problems(proc)
            if problems:
                result["processes"].setdefault(proc.name, {})["log_problems"] = problems
        if not args.keep:
            try:
                db.drop()
            except psycopg.Error as error:
                console.print(f"[yellow]could not drop {db.name}: {error}[/]")
            db.stop_embedded()


def _hwm_mb(pid: int) -> float | None:
    kb = status_kb(pid, "VmHWM")
    return None if kb is None else round(kb / 1024, 1)


def process_report(stack: Stack, phases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    order = {"api": 0, "worker": 1, "projections": 2, "target": 3}
    for proc in sorted(stack.processes.all, key=lambda p: (order.get(p.role, 9), p.name)):
        report[proc.name] = {"role": proc.role, "pid": proc.pid, "peak_rss_mb": _hwm_mb(proc.pid),
                             "cpu_s": {n: p["cpu_s"].get(proc.name) for n, p in phases.items()}}
    report["postgres"] = {"role": "postgres", "pid": stack.postgres.postmaster,
                          "peak_rss_mb": None,
                          "cpu_s": {n: p["cpu_s"].get("postgres") for n, p in phases.items()}}
    report["bench"] = {"role": "load generator", "pid": os.getpid(),
                       "peak_rss_mb": _hwm_mb(os.getpid()),
                       "cpu_s": {n: p["cpu_s"].get("bench") for n, p in phases.items()}}
    return report


def summary_line(name: str, outcome: dict[str, Any]) -> str:
    if name == "throughput":
        return (f"{outcome['calls']:,} calls in {outcome['seconds']} s: "
                f"{outcome['calls_per_s']:,} calls/s; batch submit "
                f"{outcome['batch_submit_calls_per_s']:,} calls/s; statuses {outcome['statuses']}")
    if name == "submit":
        return (f"{outcome['created']:,} created, {outcome['calls_per_s']:,} calls/s, p50 "
                f"{outcome['latency_ms']['p50']} ms, p99 {outcome['latency_ms']['p99']} ms")
    if name == "batch":
        return f"{outcome['calls']:,} calls, {outcome['calls_per_s']:,} calls/s"
    late = outcome["lateness_ms"]
    return f"lateness p50 {late['p50']} ms, p95 {late['p95']} ms, p99 {late['p99']} ms"


# -- output ---------------------------------------------------------------------------------------


def verdict(figure: str, value: float | None) -> str:
    if figure not in TARGETS or value is None:
        return ""
    op, threshold, _ = TARGETS[figure]
    ok = value >= threshold if op == ">=" else value <= threshold
    return "[green]yes[/]" if ok else "[red]no[/]"


def fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def _stdout() -> Console:
    out = Console(highlight=False)
    return out if out.is_terminal else Console(highlight=False, width=120)


def print_report(result: dict[str, Any]) -> None:
    out = _stdout()
    f = result["figures"]
    phases = result["phases"]
    calls = phases.get("throughput", {}).get("calls")
    table = Table(title="duecall benchmark (issue 7)", title_justify="left")
    table.add_column("figure")
    table.add_column("measured", justify="right")
    table.add_column("target")
    table.add_column("met")
    rows = [
        (f"end-to-end throughput ({calls or '?':,} calls due now)" if calls else
         "end-to-end throughput", "throughput_calls_per_s", fmt(f["throughput_calls_per_s"],
                                                               " calls/s")),
        ("single submit, 32 concurrent: rate", "submit_calls_per_s",
         fmt(f["submit_calls_per_s"], " calls/s")),
        ("single submit: p50 / p99", "submit_p99_ms",
         f"{fmt(f['submit_p50_ms'], ' ms')} / {fmt(f['submit_p99_ms'], ' ms')}"),
        ("batch submit (workers idle)", "batch_submit_calls_per_s",
         fmt(f["batch_submit_calls_per_s"], " calls/s")),
        ("batch submit during the throughput run", "",
         fmt(f["batch_submit_during_throughput_calls_per_s"], " calls/s")),
        ("timer precision: p50 / p95 / p99 late", "precision_p99_ms",
         f"{fmt(f['precision_p50_ms'], ' ms')} / {fmt(f['precision_p95_ms'], ' ms')} / "
         f"{fmt(f['precision_p99_ms'], ' ms')}"),
        ("projector lag (worst projection, since recorded): p50 / p99", "projector_lag_p99_ms",
         f"{fmt(f['projector_lag_p50_ms'], ' ms', 0)} / {fmt(f['projector_lag_p99_ms'], ' ms', 0)}"
         f"  ({fmt(f['projector_lag_p50_events'], '', 0)} / "
         f"{fmt(f['projector_lag_p99_events'], ' events', 0)}; since the events' own "
         f"timestamps {fmt(f['projector_lag_p50_ms_since_created'], ' ms', 0)} / "
         f"{fmt(f['projector_lag_p99_ms_since_created'], ' ms', 0)})"),
        ("CPU per call, all processes (throughput run)", "",
         fmt(f["cpu_ms_per_call_total"], " ms", 2)),
        ("peak RSS, largest duecall process", "peak_rss_mb_max", fmt(f["peak_rss_mb_max"], " MB")),
    ]
    for label, key, measured in rows:
        target = TARGETS[key][2] if key in TARGETS else ""
        met = verdict(key, f.get(key)) if key else ""
        if key == "precision_p99_ms":
            target = "p50 ≤ 5 ms, p99 ≤ 10 ms"
            met = _both(verdict("precision_p50_ms", f["precision_p50_ms"]), met)
        table.add_row(label, measured, target, met)
    out.print(table)

    procs = result.get("processes", {})
    through = phases.get("throughput", {})
    per_call = through.get("cpu_ms_per_call", {})
    util = through.get("cpu_utilisation", {})
    ptable = Table(title="processes (CPU during the throughput run)", title_justify="left")
    for column in ("process", "pid", "CPU ms/call", "CPU cores busy", "peak RSS"):
        ptable.add_column(column, justify="left" if column == "process" else "right")
    for name, proc in procs.items():
        ptable.add_row(name, str(proc.get("pid") or "n/a"), fmt(per_call.get(name), "", 3),
                       fmt(util.get(name), "", 2), fmt(proc.get("peak_rss_mb"), " MB"))
    other, wall = through.get("other_cpu_s"), through.get("wall_s")
    if other is not None and wall:
        ptable.add_row("[dim]not the benchmark[/]", "", "", fmt(other / wall, "", 2), "")
    out.print(ptable)

    m = result["machine"]
    pg = m.get("postgres", {})
    out.print(f"machine: {m.get('nproc')} CPUs ({m.get('cpu_model', '?')}), "
              f"{m.get('mem_total_mb', '?')} MB; load average at start "
              f"{m.get('load_average_at_start')}")
    out.print(f"Python {m.get('python')}; PostgreSQL {pg.get('server_version', '?')} "
              f"(fsync {pg.get('fsync', '?')}, synchronous_commit "
              f"{pg.get('synchronous_commit', '?')}; {result.get('database', {}).get('mode')}); "
              f"duecall {m.get('duecall_commit')}; eventsourcing "
              f"{m.get('versions', {}).get('eventsourcing', '?')}")
    c = result["config"]
    projections = (f"{c['projection_procs']} projections process(es)" if c["projection_procs"]
                   else "read models kept by the workers")
    out.print(f"stack: {c['api_procs']} api, {c['worker_procs']} worker process(es), "
              f"{projections}; load generator: httpx ({c['client']}) in the bench process")
    for note in result.get("anomalies", []):
        out.print(f"[yellow]note:[/] {note}")


def _both(a: str, b: str) -> str:
    if not a or not b:
        return a or b
    return "[green]yes[/]" if "yes" in a and "yes" in b else "[red]no[/]"


def anomalies_of(result: dict[str, Any]) -> list[str]:
    notes = []
    load = result["machine"].get("load_average_at_start", [0])[0]
    if load > 0.5:
        notes.append(f"load average was {load} at start: other work shares the CPUs")
    for name, phase in result["phases"].items():
        other, wall = phase.get("other_cpu_s"), phase.get("wall_s") or 0
        if other is not None and wall and other / wall > 0.2:
            notes.append(f"{name}: processes outside the benchmark used {other / wall:.2f} "
                         f"cores on average ({other:.1f} CPU s): figures are disturbed")
    notes += _phase_anomalies(result["phases"])
    if result.get("postgres_cpu", "").endswith("n/a"):
        notes.append("Postgres CPU n/a: the server's processes are not visible here")
    for name, proc in result.get("processes", {}).items():
        if proc.get("log_problems"):
            notes.append(f"{name} logged {proc['log_problems']['counts']} (see its log)")
    return notes


def _phase_anomalies(phases: dict[str, dict[str, Any]]) -> list[str]:
    notes = []
    t = phases.get("throughput", {})
    if t and t.get("statuses", {}).get("succeeded") != t.get("calls"):
        notes.append(f"throughput: not every call succeeded: {t.get('statuses')}")
    if t and t.get("target_arrivals", 0) > t.get("calls", 0):
        notes.append(f"throughput: {t['target_arrivals'] - t['calls']} duplicate deliveries")
    if t and t.get("projector_lag", {}).get("error"):
        notes.append(f"lag sampler failed: {t['projector_lag']['error']}")
    s = phases.get("submit", {})
    if s.get("errors"):
        notes.append(f"submit: {s['errors']} errors, e.g. {s['first_errors'][:1]}")
    p = phases.get("precision", {})
    if p.get("early"):
        notes.append(f"precision: {p['early']} calls arrived BEFORE their due time")
    if p.get("duplicates"):
        notes.append(f"precision: {p['duplicates']} duplicate deliveries")
    if p and p.get("submitted_before_first_due_s", 1) < 0:
        notes.append("precision: the submit finished after the first due time")
    return notes


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # clean up (processes, database) as on Ctrl-C
    signal.signal(signal.SIGINT, _interrupt)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_path: Path = args.out or REPO_ROOT / "bench-results" / f"bench-{stamp}.json"
    log_dir = out_path.parent / f"{out_path.stem}-logs"
    result: dict[str, Any] = {
        "format": 1,
        "started_at": datetime.now(UTC).isoformat(),
        "command": [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])],
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine_info(("eventsourcing", "fastapi", "uvicorn", "httpx", "psycopg",
                                 "pydantic"), cpus_usable=True, uncommitted_files=True),
        "phases": {},
        "targets": {k: v[2] for k, v in TARGETS.items()},
        "logs": str(log_dir),
        "error": None,
    }
    code = 0
    try:
        run(args, result, log_dir)
    except (BenchError, psycopg.Error, httpx.HTTPError, OSError) as error:
        result["error"] = f"{type(error).__name__}: {error}"
        console.print(f"[red]benchmark failed:[/] {result['error']}")
        code = 1
    except KeyboardInterrupt:
        console.print("[red]interrupted[/] (processes stopped, database dropped unless --keep)")
        result["error"] = "interrupted"
        code = 130
    result["finished_at"] = datetime.now(UTC).isoformat()
    result["figures"] = figures_of(result["phases"], result.get("processes", {}))
    result["anomalies"] = anomalies_of(result)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2, default=str))
    print_report(result)
    _stdout().print(f"JSON: {out_path}   logs: {log_dir}")
    return code


if __name__ == "__main__":
    sys.exit(main())
