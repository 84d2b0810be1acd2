#!/usr/bin/env python
"""Chaos run (issue 8): crashes, a database restart, slow and broken targets — nothing lost,
nothing doubled.

    .venv/bin/python scripts/chaos.py                 # 5,000 calls at 40/s, 3 workers, all faults
    .venv/bin/python scripts/chaos.py --calls 600 --rate 50 --kill-interval 4   # a short run

The stack is started as a user would start it: ``duecall api`` and ``--workers`` ``duecall
worker`` processes (each also runs the read models), on a private embedded PostgreSQL in a
temporary directory (so it can be restarted), or on ``--database-url`` (a fresh database is
created there and dropped afterwards; ``--pg-restart-command`` restarts that server). The target
is scripts/chaos_target.py in its own process: it records every delivery and misbehaves by path
(503 then 200, 503 with Retry-After, answers slower than the call's timeout, connection resets).

The workload: ``--calls`` calls offered at ``--rate`` calls/s, in small batches (per-item
idempotency keys) and single submits (an Idempotency-Key header); a submit answered 503 (or not
at all) is sent again with the same keys until it is accepted. Mix: immediate, delayed 2-6 s,
failing once or twice with 503, 503 + Retry-After, slower than the timeout once, reset once,
and failing for good (3 attempts). Circuit breakers and concurrency limits are set out of the
way (they have their own tests): every call must end by its retry policy alone.

Faults, one at a time, while the workload is offered: SIGKILL a random worker every
``--kill-interval`` s (a new one is started at once); restart PostgreSQL once (stop, wait
``--pg-down`` s, start) at ``--pg-restart-at`` of the submit phase; SIGTERM one worker (a
graceful stop: in-flight attempts finish or are handed back) at ``--sigterm-at``, timing how
long it takes to exit (a replacement starts at once).

Checked at the end, from the event store (``duecall_events``), the target's records and the
read models:
  * every call the API accepted reached a terminal state, and each token has exactly one call
    (a submit retried after a 503 never made a second one);
  * no call has two terminal events, no attempt two starts, two outcomes or two executions, and
    no execution two terminal events; every started attempt has its outcome; the outbox is empty;
  * every delivery the target saw carries ``Idempotency-Key: <that call's id>:<attempt>`` of an
    attempt the event store recorded (so a duplicate delivery carries the key of the first);
    every successful execution was delivered; duplicates (the at-least-once cost) are counted;
  * the read models agree with the event store (each call's status and version, each
    execution's outcome), and rebuilding each one from position 0 gives identical tables.
Recovery after each fault: the time from the fault's end (process gone, database back) until
calls complete again at >= 80% of the rate of the 5 s before it; and when the last attempt that
was in flight at the fault completed (a killed worker's attempts wait for their leases).

Output: tables on stdout, JSON in ``bench-results/chaos-<timestamp>.json`` (logs of every
process beside it). Exit code 0 when every invariant holds, 1 when one does not, 2 on an error.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from _harness import (  # puts the repository root on sys.path, for projections.* below
    ENTRY,
    HOST,
    REPO_ROOT,
    HelpFormatter,
    Managed,
    apply_env_items,
    check_env_items,
    free_port,
    machine_info,
    rounded,
    spawn,
    stop_all,
)
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from rich.console import Console
from rich.table import Table

from projections.executions import TABLE as EXECUTIONS_TABLE
from projections.read_models import PROJECTIONS
from projections.runner import TRACKING_TABLE
from projections.service_calls import TABLE as CALLS_TABLE

LOOPBACK_ALLOWLIST = "127.0.0.1/32,::1/128,localhost"
TENANT = "chaos"
TERMINAL = {"Succeeded": "succeeded", "Failed": "failed", "Cancelled": "cancelled"}
CALL_OUTCOMES = ("AttemptFailed", "Succeeded")  # one per attempt; Failed ends the call
SLOW_SECONDS = 3.0  # the slow target's answer; those calls time out after 1 s
RECOVERED_FRACTION = 0.8
BASELINE_SECONDS = 5.0
SHUTDOWN_MARGIN_SECONDS = 3.0  # the process's own exit: pools closed, interpreter torn down
STRAGGLER_SECONDS = 10.0  # an attempt in flight at a fault that ended this much later
CONNECTIONS_PER_PROCESS = 25  # pools of a duecall process at most (workers, read models, API)

# kind → share of the workload
MIX: dict[str, float] = {
    "ok": 0.45,
    "delayed": 0.15,
    "fail_once": 0.12,
    "fail_twice": 0.06,
    "retry_after": 0.06,
    "slow": 0.06,
    "reset": 0.06,
    "fail_always": 0.04,
}
EXPECTED = {kind: "failed" if kind == "fail_always" else "succeeded" for kind in MIX}

console = Console(stderr=True, highlight=False)


class ChaosError(RuntimeError):
    pass


# -- options ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/chaos.py",
        description="Fault-tolerance run (issue 8): real API and worker processes, a real "
        "misbehaving target, worker SIGKILLs, a PostgreSQL restart and a graceful SIGTERM; "
        "then checks that nothing was lost or doubled. See the module docstring.",
        formatter_class=HelpFormatter,
    )
    load = parser.add_argument_group("workload")
    load.add_argument("--calls", type=int, default=5000, help="calls to submit")
    load.add_argument("--rate", type=float, default=40.0,
                      help="calls offered per second (keep it below what the stack sustains: "
                      "recovery is measured against the rate before each fault)")
    load.add_argument("--single-fraction", type=float, default=0.2,
                      help="share of calls submitted one by one (the rest in small batches)")
    load.add_argument("--seed", type=int, default=8, help="seed of the mix and the faults")

    stack = parser.add_argument_group("the stack")
    stack.add_argument("--workers", type=int, default=3, help="`duecall worker` processes")
    stack.add_argument("--database-url", default=None,
                       help="an external PostgreSQL server (a fresh database is made there); "
                       "default: a private embedded server in a temporary directory")
    stack.add_argument("--pg-restart-command", default=None,
                       help="with --database-url: a shell command that stops the server, waits "
                       "and starts it again (without it the external server is not restarted)")
    stack.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                       help="extra environment of the duecall processes (repeatable), e.g. "
                       "--env DUECALL_EXECUTION_GRACE_SECONDS=5")
    stack.add_argument("--start-timeout", type=float, default=60.0,
                       help="seconds a process may take to come up")

    faults = parser.add_argument_group("faults")
    faults.add_argument("--kill-interval", type=float, default=6.0,
                        help="seconds between SIGKILLs of a random worker (0: none)")
    faults.add_argument("--pg-restart-at", type=float, default=0.4,
                        help="when to restart PostgreSQL, as a fraction of the submit phase "
                        "(negative: never)")
    faults.add_argument("--pg-down", type=float, default=3.0,
                        help="seconds PostgreSQL stays stopped")
    faults.add_argument("--sigterm-at", type=float, default=0.75,
                        help="when to SIGTERM a worker, as a fraction of the submit phase "
                        "(negative: never)")
    faults.add_argument("--quiet-window", type=float, default=2.0,
                        help="no SIGKILL this many seconds around another fault")

    out = parser.add_argument_group("bounds and output")
    out.add_argument("--timeout", type=float, default=900.0,
                     help="seconds the whole run may take before it is failed")
    out.add_argument("--out", type=Path, default=None,
                     help="JSON path [bench-results/chaos-<timestamp>.json]")
    out.add_argument("--keep", action="store_true",
                     help="keep the database (and the embedded server's directory)")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.rate <= 0 or args.workers < 2:
        parser.error("--calls >= 1, --rate > 0 and --workers >= 2 are required")
    if not 0 <= args.single_fraction <= 1:
        parser.error("--single-fraction must be within 0..1")
    if args.pg_restart_command and not args.database_url:
        parser.error("--pg-restart-command goes with --database-url")
    check_env_items(parser, args.env)
    return args


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


# -- the workload -------------------------------------------------------------------------------


@dataclass
class Planned:
    index: int
    token: str
    kind: str
    single: bool
    payload: dict[str, Any]


def plan_workload(args: argparse.Namespace, target_url: str) -> list[Planned]:
    rng = random.Random(args.seed)
    kinds = list(MIX)
    weights = [MIX[k] for k in kinds]
    calls = []
    for index in range(args.calls):
        kind = rng.choices(kinds, weights)[0]
        token = f"c{index:06d}-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
        calls.append(Planned(index, token, kind, rng.random() < args.single_fraction,
                             call_payload(kind, token, target_url, rng)))
    return calls


def call_payload(kind: str, token: str, target_url: str, rng: random.Random) -> dict[str, Any]:
    path = {
        "ok": f"/ok/{token}",
        "delayed": f"/ok/{token}",
        "fail_once": f"/fail/1/{token}",
        "fail_twice": f"/fail/2/{token}",
        "retry_after": f"/retry-after/1/1/{token}",
        "slow": f"/slow/{SLOW_SECONDS:g}/1/{token}",
        "reset": f"/reset/1/{token}",
        "fail_always": f"/fail/1000/{token}",
    }[kind]
    payload: dict[str, Any] = {
        "name": f"chaos-{kind}",
        "request": {"method": "POST", "url": target_url + path, "body": {"token": token},
                    "timeout_seconds": 1 if kind == "slow" else 2},
        "retry_policy": {"max_attempts": 3 if kind == "fail_always" else 6,
                         "initial_backoff_seconds": 0.5, "max_backoff_seconds": 2.0},
        "tags": ["chaos", kind],
    }
    if kind == "delayed":
        payload["delay_seconds"] = round(rng.uniform(2.0, 6.0), 2)
    return payload


@dataclass
class SubmitStats:
    ids: dict[str, str] = field(default_factory=dict)  # token → call id
    requests: int = 0
    retries: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # HTTP status or error name
    not_problem_json: int = 0  # 5xx answers that were not problem+json
    refused: list[str] = field(default_factory=list)  # tokens the API refused for good
    slowest_s: float = 0.0
    started: float = 0.0  # time.time()
    finished: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)


class Submitter:
    """Offers the planned calls at a steady rate; retries a submit until it is accepted."""

    TICK = 0.1

    def __init__(self, api_url: str, key: str, calls: list[Planned], rate: float,
                 deadline: float) -> None:
        self._api_url = api_url
        self._key = key
        self._calls = calls
        self._rate = rate
        self._deadline = deadline
        self.stats = SubmitStats()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:
            self.error = error
        finally:
            self.stats.finished = time.time()
            self.stats.done.set()

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        headers = {"Authorization": f"Bearer {self._key}"}
        async with httpx.AsyncClient(base_url=self._api_url, headers=headers, limits=limits,
                                     timeout=30.0, trust_env=False) as client:
            gate = asyncio.Semaphore(16)
            tasks: list[asyncio.Task[None]] = []
            per_tick = self._rate * self.TICK
            began = time.monotonic()
            self.stats.started = time.time()
            sent = 0
            tick = 0
            while sent < len(self._calls):
                await asyncio.sleep(max(0.0, began + tick * self.TICK - time.monotonic()))
                count = int((tick + 1) * per_tick) - int(tick * per_tick)
                group = self._calls[sent:sent + count]
                sent += len(group)
                tick += 1
                batch = [c for c in group if not c.single]
                if batch:
                    tasks.append(asyncio.create_task(self._batch(client, gate, batch)))
                for call in group:
                    if call.single:
                        tasks.append(asyncio.create_task(self._single(client, gate, call)))
            await asyncio.gather(*tasks)

    async def _batch(self, client: httpx.AsyncClient, gate: asyncio.Semaphore,
                     calls: list[Planned]) -> None:
        body = {"calls": [{**c.payload, "idempotency_key": c.token} for c in calls]}
        answer = await self._until_accepted(client, gate, "/v1/service-calls:batch", body, {})
        if answer is None:
            self.stats.refused.extend(c.token for c in calls)
            return
        for call, item in zip(calls, answer["items"], strict=True):
            self.stats.ids[call.token] = item["id"]

    async def _single(self, client: httpx.AsyncClient, gate: asyncio.Semaphore,
                      call: Planned) -> None:
        answer = await self._until_accepted(client, gate, "/v1/service-calls", call.payload,
                                            {"Idempotency-Key": call.token})
        if answer is None:
            self.stats.refused.append(call.token)
            return
        self.stats.ids[call.token] = answer["id"]

    async def _until_accepted(self, client: httpx.AsyncClient, gate: asyncio.Semaphore,
                              path: str, body: dict[str, Any],
                              headers: dict[str, str]) -> dict[str, Any] | None:
        content = orjson.dumps(body)
        headers = {**headers, "Content-Type": "application/json"}
        while True:
            if time.monotonic() > self._deadline:
                raise ChaosError("submitting did not finish within the run's timeout")
            began = time.monotonic()
            try:
                async with gate:
                    response = await client.post(path, content=content, headers=headers)
            except httpx.HTTPError as error:
                self.stats.answers[type(error).__name__] += 1
            else:
                code = response.status_code
                self.stats.answers[str(code)] += 1
                self.stats.slowest_s = max(self.stats.slowest_s, time.monotonic() - began)
                if code in (200, 201):
                    answer: dict[str, Any] = response.json()
                    return answer
                if code >= 500 and not response.headers.get("content-type", "").startswith(
                        "application/problem+json"):
                    self.stats.not_problem_json += 1
                if code not in (429, 500, 502, 503, 504):
                    console.print(f"[red]submit refused: HTTP {code}: {response.text[:300]}[/]")
                    return None
            finally:
                self.stats.requests += 1
            self.stats.retries += 1
            await asyncio.sleep(0.5)


# -- faults -------------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str  # sigkill | pg_restart | sigterm
    planned_at_s: float
    at: float = 0.0  # time.time() it began
    until: float = 0.0  # time.time() it was over (process gone, database answering)
    detail: dict[str, Any] = field(default_factory=dict)


def plan_faults(args: argparse.Namespace, restartable: bool) -> list[Fault]:
    submit_seconds = args.calls / args.rate
    faults: list[Fault] = []
    busy: list[tuple[float, float]] = []
    if restartable and args.pg_restart_at >= 0:
        at = submit_seconds * args.pg_restart_at
        faults.append(Fault("pg_restart", at))
        busy.append((at - args.quiet_window, at + args.pg_down + 2 + args.quiet_window))
    if args.sigterm_at >= 0:
        at = submit_seconds * args.sigterm_at
        faults.append(Fault("sigterm", at))
        busy.append((at - args.quiet_window, at + args.quiet_window))
    if args.kill_interval > 0:
        at = min(args.kill_interval / 2, submit_seconds / 4)
        while at < submit_seconds:
            if not any(low <= at <= high for low, high in busy):
                faults.append(Fault("sigkill", at))
            at += args.kill_interval
    return sorted(faults, key=lambda f: f.planned_at_s)


class FaultInjector:
    def __init__(self, args: argparse.Namespace, stack: Stack, faults: list[Fault]) -> None:
        self._args = args
        self._stack = stack
        self.faults = faults
        self._rng = random.Random(args.seed + 1)
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.graceful: list[dict[str, Any]] = []

    def run(self, began: float) -> None:
        try:
            for fault in self.faults:
                if self.stopped.wait(max(0.0, began + fault.planned_at_s - time.time())):
                    return
                getattr(self, f"_{fault.kind}")(fault)
                console.print(f"  fault {fault.kind} at {fault.at - began:.1f} s: "
                              f"{json.dumps(fault.detail)}")
        except BaseException as error:
            self.error = error

    def _victim(self) -> Managed:
        live = self._stack.live_workers()
        if not live:
            raise ChaosError("no live worker to inject a fault into")
        return self._rng.choice(live)

    def _sigkill(self, fault: Fault) -> None:
        victim = self._victim()
        fault.at = time.time()
        victim.popen.kill()
        victim.popen.wait(timeout=10)
        fault.until = time.time()
        self._stack.forget(victim)
        replacement = self._stack.start_worker()
        fault.detail = {"worker": victim.name, "pid": victim.pid,
                        "replacement": replacement.name}

    def _sigterm(self, fault: Fault) -> None:
        victim = self._victim()
        fault.at = time.time()
        replacement = self._stack.start_worker()  # as a rolling restart would
        seconds = self._stack.terminate(victim, timeout=self._shutdown_timeout() + 30)
        fault.until = time.time()
        self._stack.forget(victim)
        fault.detail = {"worker": victim.name, "pid": victim.pid, "exit_s": rounded(seconds, 3),
                        "returncode": victim.popen.returncode,
                        "shutdown_timeout_s": self._shutdown_timeout(),
                        "replacement": replacement.name}
        self.graceful.append({"under_load": True, **fault.detail})

    def _pg_restart(self, fault: Fault) -> None:
        fault.at = time.time()
        steps = self._stack.db.restart(self._args.pg_down)
        fault.until = time.time()
        fault.detail = {k: rounded(v, 3) for k, v in steps.items()}

    def _shutdown_timeout(self) -> float:
        return float(self._stack.env.get("DUECALL_SHUTDOWN_TIMEOUT_SECONDS", "30"))


# -- reading the event store ----------------------------------------------------------------------


def _ts(state: dict[str, Any]) -> float:
    stamp = state["timestamp"]
    text = stamp["_data_"] if isinstance(stamp, dict) else str(stamp)
    return datetime.fromisoformat(text).timestamp()


def _uuid(value: Any) -> str:
    if isinstance(value, dict):
        return str(uuid.UUID(value["_data_"]))
    return str(uuid.UUID(str(value)))


@dataclass
class CallHistory:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (event, state)


def read_events(url: str) -> tuple[dict[str, CallHistory], dict[str, CallHistory]]:
    """Every ServiceCall and Execution aggregate's events, in recorded order."""
    calls: dict[str, CallHistory] = defaultdict(CallHistory)
    executions: dict[str, CallHistory] = defaultdict(CallHistory)
    with psycopg.connect(url) as conn, conn.cursor(name="events") as cursor:
        cursor.itersize = 5000
        cursor.execute(
            "SELECT originator_id, topic, state FROM duecall_events "
            "WHERE topic LIKE 'duecall:ServiceCall.%%' OR topic LIKE 'duecall:Execution.%%' "
            "ORDER BY notification_id"
        )
        for originator_id, topic, state in cursor:
            aggregate, _, event = topic.removeprefix("duecall:").partition(".")
            into = calls if aggregate == "ServiceCall" else executions
            into[str(originator_id)].events.append((event, orjson.loads(bytes(state))))
    return dict(calls), dict(executions)


@dataclass
class Attempt:
    call_id: str
    attempt: int
    started: float
    finished: float | None
    execution_id: str


STORE_PROBLEMS = (
    "not_terminal", "double_terminal", "events_after_terminal", "attempt_started_twice",
    "attempt_two_outcomes", "attempt_without_outcome", "outcome_without_start",
    "execution_not_started_once", "execution_two_outcomes", "execution_unfinished",
    "two_executions_for_one_attempt", "attempt_without_execution",
    "execution_of_another_attempt", "execution_without_attempt", "accepted_but_missing",
    "recorded_but_never_accepted", "token_with_two_calls", "token_answered_with_another_call",
)


@dataclass
class StoreAudit:
    """What the event store says, and every way it breaks an invariant (``problems``)."""

    problems: dict[str, list[str]] = field(
        default_factory=lambda: {name: [] for name in STORE_PROBLEMS})
    status: dict[str, str] = field(default_factory=dict)  # call id → succeeded, failed, ...
    token_of: dict[str, str] = field(default_factory=dict)  # call id → workload token
    versions: dict[str, int] = field(default_factory=dict)  # call id → events
    completions: list[float] = field(default_factory=list)  # terminal event times, sorted
    attempts: list[Attempt] = field(default_factory=list)
    execution_keys: dict[str, tuple[str, int]] = field(default_factory=dict)  # → (call, n)
    execution_outcome: dict[str, str] = field(default_factory=dict)
    figures: dict[str, int] = field(default_factory=dict)

    @property
    def examples(self) -> dict[str, list[str]]:
        return {name: items[:5] for name, items in self.problems.items() if items}

    def call(self, call_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        self.versions[call_id] = len(events)
        self.token_of[call_id] = str(events[0][1].get("url", "")).rpartition("/")[2]
        terminals = [(e, s) for e, s in events if e in TERMINAL]
        if len(terminals) > 1:
            self.problems["double_terminal"].append(call_id)
        if terminals:
            self.status[call_id] = TERMINAL[terminals[0][0]]
            self.completions.append(_ts(terminals[0][1]))
            if events[-1][0] not in TERMINAL:
                self.problems["events_after_terminal"].append(call_id)
        else:
            self.status[call_id] = events[-1][0].lower()
            self.problems["not_terminal"].append(call_id)
        started: dict[int, list[dict[str, Any]]] = defaultdict(list)
        outcomes: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for event, state in events:
            if event == "Started":
                started[int(state["attempt"])].append(state)
            elif event in CALL_OUTCOMES:
                outcomes[int(state["attempt"])].append(state)
        for number, starts in started.items():
            ends = outcomes.get(number, [])
            where = f"{call_id}:{number}"
            for name, broken in (("attempt_started_twice", len(starts) > 1),
                                 ("attempt_two_outcomes", len(ends) > 1),
                                 ("attempt_without_outcome", not ends)):
                if broken:
                    self.problems[name].append(where)
            self.attempts.append(Attempt(call_id, number, _ts(starts[0]),
                                         _ts(ends[0]) if ends else None,
                                         _uuid(starts[0]["execution_id"])))
        for number in outcomes.keys() - started.keys():
            self.problems["outcome_without_start"].append(f"{call_id}:{number}")

    def execution(self, execution_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        names = [e for e, _ in events]
        if names.count("Started") != 1 or names[0] != "Started":
            self.problems["execution_not_started_once"].append(execution_id)
        finished = [e for e in names if e in ("Succeeded", "Failed")]
        if len(finished) > 1:
            self.problems["execution_two_outcomes"].append(execution_id)
        if not finished:
            self.problems["execution_unfinished"].append(execution_id)
        first = events[0][1]
        self.execution_keys[execution_id] = (_uuid(first["service_call_id"]),
                                             int(first["attempt"]))
        self.execution_outcome[execution_id] = finished[0].lower() if finished else "running"

    def cross_check(self, accepted: dict[str, str]) -> None:
        """Attempts ↔ executions, accepted submits ↔ recorded calls."""
        per_attempt = Counter(self.execution_keys.values())
        self.problems["two_executions_for_one_attempt"] = [
            f"{call}:{n}" for (call, n), count in per_attempt.items() if count > 1]
        for attempt in self.attempts:
            if attempt.execution_id not in self.execution_keys:
                self.problems["attempt_without_execution"].append(
                    f"{attempt.call_id}:{attempt.attempt}")
            elif self.execution_keys[attempt.execution_id] != (attempt.call_id,
                                                                attempt.attempt):
                self.problems["execution_of_another_attempt"].append(attempt.execution_id)
        started = {(a.call_id, a.attempt) for a in self.attempts}
        self.problems["execution_without_attempt"] = [
            e for e, key in self.execution_keys.items() if key not in started]
        recorded = set(self.status)
        accepted_ids = set(accepted.values())
        per_token = Counter(self.token_of.values())
        self.problems["accepted_but_missing"] = sorted(accepted_ids - recorded)
        self.problems["recorded_but_never_accepted"] = sorted(recorded - accepted_ids)
        self.problems["token_with_two_calls"] = sorted(t for t, n in per_token.items() if n > 1)
        self.problems["token_answered_with_another_call"] = sorted(
            t for t, call in accepted.items() if call in self.token_of
            and self.token_of[call] != t)


def audit_store(url: str, accepted: dict[str, str]) -> StoreAudit:
    calls, executions = read_events(url)
    audit = StoreAudit()
    for call_id, history in calls.items():
        audit.call(call_id, history.events)
    audit.completions.sort()
    for execution_id, history in executions.items():
        audit.execution(execution_id, history.events)
    audit.cross_check(accepted)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM duecall_outbox").fetchone()
    audit.figures = {name: len(items) for name, items in audit.problems.items()}
    audit.figures.update(outbox_left=int(row[0]) if row else 0, calls=len(calls),
                         executions=len(executions), attempts=len(audit.attempts))
    return audit


# -- the target's records -----------------------------------------------------------------------


def fetch_records(target_url: str) -> list[list[Any]]:
    records: list[list[Any]] = []
    since = 0
    with httpx.Client(timeout=60.0, trust_env=False) as client:
        while True:
            data = client.get(f"{target_url}/__records", params={"since": since}).json()
            records.extend(data["records"])
            if data["next"] == since or not data["records"]:
                return records
            since = data["next"]


def audit_deliveries(records: list[list[Any]], accepted: dict[str, str],
                     store: StoreAudit) -> dict[str, Any]:
    """Every delivery names its call and a recorded attempt; duplicates carry the same key."""
    problems: dict[str, list[str]] = defaultdict(list)
    per_key: Counter[str] = Counter()
    started = {(a.call_id, a.attempt) for a in store.attempts}
    for _arrival, key, duecall_id, path, _action in records:
        token = str(path).rstrip("/").rpartition("/")[2]
        call_id = accepted.get(token)
        if not key:
            problems["delivery_without_key"].append(str(path))
            continue
        per_key[key] += 1
        key_call, _, attempt = str(key).rpartition(":")
        if call_id is None or key_call != call_id:
            problems["key_of_another_call"].append(str(key))
        elif duecall_id != call_id:
            problems["duecall_id_of_another_call"].append(str(key))
        elif not attempt.isdigit() or (key_call, int(attempt)) not in started:
            problems["key_of_no_recorded_attempt"].append(str(key))
    delivered = set(per_key)
    for execution_id, outcome in store.execution_outcome.items():
        call_id, number = store.execution_keys[execution_id]
        if outcome == "succeeded" and f"{call_id}:{number}" not in delivered:
            problems["succeeded_without_delivery"].append(execution_id)
    duplicates = {k: n for k, n in per_key.items() if n > 1}
    return {
        "requests": len(records),
        "distinct_keys": len(per_key),
        "duplicate_deliveries": sum(n - 1 for n in duplicates.values()),
        "keys_delivered_more_than_once": len(duplicates),
        "most_deliveries_of_one_key": max(per_key.values(), default=0),
        "by_action": dict(Counter(str(r[4]) for r in records)),
        "problems": {name: len(items) for name, items in problems.items()},
        "examples": {name: items[:5] for name, items in problems.items() if items},
    }


# -- the read models ----------------------------------------------------------------------------


def wait_projections(url: str, timeout: float) -> float:
    began = time.monotonic()
    names = [p.name for p in PROJECTIONS]
    while True:
        with contextlib.suppress(psycopg.Error), psycopg.connect(url) as conn:
            head_row = conn.execute("SELECT coalesce(max(notification_id), 0) "
                                    "FROM duecall_events").fetchone()
            low_row = conn.execute(f"SELECT min(notification_id) FROM {TRACKING_TABLE} "
                                   "WHERE application_name = ANY(%s)", (names,)).fetchone()
            if head_row and low_row and low_row[0] is not None and low_row[0] >= head_row[0]:
                return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise ChaosError(f"the read models did not catch up within {timeout:g} s")
        time.sleep(0.2)


def checksums(url: str) -> dict[str, str]:
    tables = [table for projection in PROJECTIONS for table in projection.tables]
    found = {}
    with psycopg.connect(url) as conn:
        for table in tables:
            row = conn.execute(f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY "
                               f"t::text), '')) FROM {table} t").fetchone()
            found[table] = str(row[0]) if row else ""
    return found


def audit_read_models(url: str, store: StoreAudit) -> dict[str, Any]:
    """Each call's status and version and each execution's outcome, as the store has them."""
    problems: dict[str, list[str]] = defaultdict(list)
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT id::text, status, version FROM {CALLS_TABLE}").fetchall()
        seen = set()
        for call_id, status, version in rows:
            seen.add(call_id)
            if store.status.get(call_id) != status:
                problems["call_status_differs"].append(call_id)
            if store.versions.get(call_id) != version:
                problems["call_version_differs"].append(call_id)
        problems["call_missing"] = sorted(store.status.keys() - seen)
        rows = conn.execute(f"SELECT id::text, service_call_id::text, attempt, outcome "
                            f"FROM {EXECUTIONS_TABLE}").fetchall()
        seen = set()
        for execution_id, call_id, attempt, outcome in rows:
            seen.add(execution_id)
            if store.execution_keys.get(execution_id) != (call_id, attempt):
                problems["execution_attempt_differs"].append(execution_id)
            if store.execution_outcome.get(execution_id) != outcome:
                problems["execution_outcome_differs"].append(execution_id)
        problems["execution_missing"] = sorted(store.execution_outcome.keys() - seen)
    return {"problems": {name: len(items) for name, items in problems.items()},
            "examples": {name: items[:5] for name, items in problems.items() if items}}


def rebuild_all(env: dict[str, str], log_dir: Path) -> None:
    for projection in PROJECTIONS:
        with (log_dir / f"rebuild-{projection.name}.log").open("wb") as log:
            done = subprocess.run(
                [sys.executable, "-c", ENTRY, "projections", "rebuild", projection.name],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=600,
                check=False,
            )
        if done.returncode != 0:
            raise ChaosError(f"rebuilding {projection.name} failed (see {log.name})")


# -- recovery -------------------------------------------------------------------------------------


def rate(times: list[float], start: float, end: float) -> float:
    if end <= start:
        return 0.0
    return (bisect.bisect_left(times, end) - bisect.bisect_left(times, start)) / (end - start)


def per_second(times: list[float], began: float) -> list[int]:
    """How many calls ended in each second from ``began`` on."""
    counts: list[int] = []
    for moment in times:
        second = max(0, int(moment - began))
        counts.extend([0] * (second + 1 - len(counts)))
        counts[second] += 1
    return counts


def recovery_of(fault: Fault, completions: list[float], attempts: list[Attempt],
                began: float, since: float) -> dict[str, Any]:
    """How completions recovered after ``fault``; which attempts it caught in flight (those
    started after ``since``, the previous fault, so each straggler is counted once)."""
    baseline = rate(completions, fault.at - BASELINE_SECONDS, fault.at)
    found: dict[str, Any] = {
        "at_s": rounded(fault.at - began),
        "duration_s": rounded(fault.until - fault.at, 3),
        "baseline_per_s": rounded(baseline, 1),
        "recovery_s": None,
        "lowest_per_s": None,
    }
    if completions and baseline > 0:
        step = 0.1
        t = fault.until
        lowest = rate(completions, fault.at, fault.at + 1.0)
        while t + 1.0 <= completions[-1] + step:
            current = rate(completions, t, t + 1.0)
            if current >= RECOVERED_FRACTION * baseline:
                found["recovery_s"] = round(t - fault.until, 2)
                break
            lowest = min(lowest, current)
            t += step
        found["lowest_per_s"] = rounded(lowest, 1)
    in_flight = [a for a in attempts if since < a.started <= fault.at
                 and (a.finished is None or a.finished > fault.at)]
    ends = [a.finished for a in in_flight if a.finished is not None]
    found["in_flight_at_fault"] = len(in_flight)
    found["last_in_flight_done_s"] = rounded(max(ends) - fault.at) if ends else None
    late = sorted((a for a in in_flight if a.finished is not None
                   and a.finished - fault.at > STRAGGLER_SECONDS),
                  key=lambda a: -(a.finished or 0.0))
    found["stragglers"] = len(late)  # waited for a lease to end
    found["straggler_examples"] = [f"{a.call_id}:{a.attempt}" for a in late[:3]]
    return found


# -- the run --------------------------------------------------------------------------------------


def count_terminal(url: str) -> int | None:
    topics = [f"duecall:ServiceCall.{name}" for name in TERMINAL]
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute("SELECT count(DISTINCT originator_id) FROM duecall_events "
                               "WHERE topic = ANY(%s)", (topics,)).fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row else 0


@dataclass
class Context:
    args: argparse.Namespace
    db: Database
    stack: Stack
    log_dir: Path
    deadline: float  # time.monotonic()
    result: dict[str, Any]
    planned: list[Planned] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    began: float = 0.0  # time.time() the workload began


def run(args: argparse.Namespace, result: dict[str, Any], log_dir: Path) -> None:
    deadline = time.monotonic() + args.timeout
    db = Database(args)
    stack: Stack | None = None
    try:
        console.print("starting PostgreSQL ...")
        db.start()
        result["database"] = db.server_info()
        stack = Stack(args, db, log_dir)
        stack.start()
        context = Context(args, db, stack, log_dir, deadline, result)
        accepted, injector = drive(context)
        audit(context, accepted, injector)
    finally:
        if stack is not None:
            stack.stop_all()
        db.close(args.keep)


def drive(ctx: Context) -> tuple[dict[str, str], FaultInjector]:
    """Offer the workload while the faults happen; wait until every accepted call ended."""
    stack, args = ctx.stack, ctx.args
    assert stack.api is not None
    assert stack.target is not None
    ctx.result["settings"] = stack.duecall_settings
    console.print(f"api {stack.api.url}, target {stack.target.url}, "
                  f"{len(stack.workers)} workers, database {ctx.result['database']['kind']}")
    ctx.planned = plan_workload(args, stack.target.url)
    ctx.faults = plan_faults(args, ctx.db.restartable)
    ctx.result["workload"] = {"calls": len(ctx.planned), "rate_per_s": args.rate,
                              "kinds": dict(Counter(c.kind for c in ctx.planned)),
                              "single_submits": sum(c.single for c in ctx.planned)}
    time.sleep(1.0)  # the workers connect
    for worker in stack.workers:
        if not worker.alive():
            raise ChaosError(f"{worker.name} exited:\n{worker.log_tail()}")
    submitter = Submitter(stack.api.url, stack.key, ctx.planned, args.rate, ctx.deadline)
    injector = FaultInjector(args, stack, ctx.faults)
    ctx.began = time.time()
    faulting = threading.Thread(target=injector.run, args=(ctx.began,), name="faults",
                                daemon=True)
    threading.Thread(target=submitter.run, name="submitter", daemon=True).start()
    faulting.start()
    console.print(f"offering {len(ctx.planned):,} calls at {args.rate:g}/s; "
                  f"{len(ctx.faults)} faults planned")
    last_print = 0.0
    while True:
        if submitter.error is not None:
            raise ChaosError(f"submitting failed: {submitter.error!r}")
        if injector.error is not None:
            raise ChaosError(f"a fault failed: {injector.error!r}")
        terminal = count_terminal(ctx.db.url)
        accepted = len(submitter.stats.ids)
        done = (submitter.stats.done.is_set() and not faulting.is_alive()
                and terminal is not None and terminal >= accepted)
        if done or time.monotonic() - last_print > 5:
            last_print = time.monotonic()
            shown = "?" if terminal is None else f"{terminal:,}"
            console.print(f"  t={time.time() - ctx.began:6.1f} s  accepted {accepted:,}/"
                          f"{len(ctx.planned):,}  terminal {shown}  "
                          f"workers {len(stack.live_workers())}")
        if done:
            break
        if time.monotonic() > ctx.deadline:
            raise ChaosError("the calls did not all finish within --timeout")
        time.sleep(0.5)
    stats = submitter.stats
    ctx.result["run_seconds"] = round(time.time() - ctx.began, 2)
    ctx.result["submit"] = {
        "accepted": len(stats.ids), "refused": len(stats.refused),
        "requests": stats.requests, "retries": stats.retries,
        "answers": dict(stats.answers), "5xx_not_problem_json": stats.not_problem_json,
        "slowest_answer_s": round(stats.slowest_s, 3),
        "seconds": round(stats.finished - stats.started, 2),
    }
    return dict(stats.ids), injector


def audit(ctx: Context, accepted: dict[str, str], injector: FaultInjector) -> None:
    """Check the invariants; measure the recoveries."""
    stack, db, result = ctx.stack, ctx.db, ctx.result
    assert stack.target is not None
    console.print("waiting for the read models to catch up ...")
    caught_up = wait_projections(db.url, max(30.0, ctx.deadline - time.monotonic()))
    live = checksums(db.url)
    console.print("stopping the workers (SIGTERM) ...")
    idle_stops = []
    for worker in stack.live_workers():
        seconds = stack.terminate(worker, timeout=60)
        idle_stops.append({"worker": worker.name, "exit_s": rounded(seconds, 3),
                           "returncode": worker.popen.returncode})
    console.print("auditing the event store, the deliveries and the read models ...")
    store = audit_store(db.url, accepted)
    deliveries = audit_deliveries(fetch_records(stack.target.url), accepted, store)
    models = audit_read_models(db.url, store)
    console.print("rebuilding every read model from position 0 ...")
    rebuild_all(stack.env, ctx.log_dir)
    rebuilt = checksums(db.url)
    models["caught_up_after_s"] = round(caught_up, 2)
    models["rebuilt_tables_differing"] = sorted(t for t in live if live[t] != rebuilt.get(t))

    kind_of = {c.token: c.kind for c in ctx.planned}
    unexpected = [cid for cid, token in store.token_of.items()
                  if store.status.get(cid) != EXPECTED.get(kind_of.get(token, ""))]
    result["outcomes"] = {**dict(Counter(store.status.values())), "unexpected": len(unexpected),
                          "unexpected_examples": unexpected[:5]}
    result["event_store"] = {"figures": store.figures, "examples": store.examples}
    result["deliveries"] = deliveries
    result["read_models"] = models
    happened = [f for f in ctx.faults if f.at]
    result["faults"] = [
        {"kind": f.kind,
         **recovery_of(f, store.completions, store.attempts, ctx.began,
                       happened[i - 1].at if i else 0.0),
         "detail": f.detail}
        for i, f in enumerate(happened)
    ]
    result["graceful_shutdown"] = {"under_load": injector.graceful, "at_end": idle_stops}
    result["completions_per_s"] = per_second(store.completions, ctx.began)
    result["invariants"] = invariants(result, store, deliveries, models)
    result["ok"] = all(item["ok"] for item in result["invariants"].values())


def invariants(result: dict[str, Any], store: StoreAudit, deliveries: dict[str, Any],
               models: dict[str, Any]) -> dict[str, dict[str, Any]]:
    f = store.figures
    lost = f["accepted_but_missing"] + f["not_terminal"] + result["submit"]["refused"]
    doubled = (f["double_terminal"] + f["events_after_terminal"] + f["attempt_started_twice"]
               + f["attempt_two_outcomes"] + f["two_executions_for_one_attempt"]
               + f["execution_two_outcomes"] + f["execution_not_started_once"])
    half = (f["recorded_but_never_accepted"] + f["token_with_two_calls"]
            + f["token_answered_with_another_call"])
    dangling = (f["attempt_without_outcome"] + f["outcome_without_start"]
                + f["attempt_without_execution"] + f["execution_without_attempt"]
                + f["execution_of_another_attempt"] + f["execution_unfinished"]
                + f["outbox_left"])
    keys = sum(deliveries["problems"].values())
    read_models = sum(models["problems"].values()) + len(models["rebuilt_tables_differing"])
    graceful = result["graceful_shutdown"]["under_load"] + result["graceful_shutdown"]["at_end"]
    limit = float(result["settings"].get("DUECALL_SHUTDOWN_TIMEOUT_SECONDS", "30"))
    slow_stops = [g for g in graceful
                  if g["exit_s"] is None or g["exit_s"] > limit + SHUTDOWN_MARGIN_SECONDS]
    not_problem = result["submit"]["5xx_not_problem_json"]
    return {
        "zero lost (every accepted call terminal)": {"ok": lost == 0, "count": lost},
        "zero doubled (terminal events, attempts, executions)": {"ok": doubled == 0,
                                                                "count": doubled},
        "nothing half-written (one call per submit, retries included)": {"ok": half == 0,
                                                                          "count": half},
        "every attempt complete, outbox empty": {"ok": dangling == 0, "count": dangling},
        "deliveries carry their attempt's Idempotency-Key": {"ok": keys == 0, "count": keys},
        "read models agree with the event store (and a rebuild)": {"ok": read_models == 0,
                                                                   "count": read_models},
        "graceful stops within the shutdown timeout (+3 s)": {"ok": not slow_stops,
                                                       "count": len(slow_stops)},
        "API errors are problem+json (no stack traces)": {"ok": not_problem == 0,
                                                          "count": not_problem},
    }


# -- report ---------------------------------------------------------------------------------------


def report(result: dict[str, Any]) -> None:
    out = Console(highlight=False, width=150)
    if result.get("error"):
        out.print(f"[bold red]error:[/] {result['error']}")
    if "invariants" in result:
        table = Table("invariant", "holds", "violations", title="invariants")
        for name, item in result["invariants"].items():
            table.add_row(name, "[green]yes[/]" if item["ok"] else "[red]NO[/]",
                          str(item["count"]))
        out.print(table)
    if "faults" in result:
        table = Table("fault", "at s", "lasted s", "before /s", "lowest /s", "recovered s",
                      "in flight", "stragglers", "last done s", "detail",
                      title="faults: recovered = calls completing at >= 80% of the rate of the "
                      "5 s before, counted from the fault's end; stragglers = attempts in "
                      "flight that ended > 10 s later (their leases)")
        for fault in result["faults"]:
            detail = fault["detail"]
            shown = {"sigterm": f"{detail.get('worker')} exited in {detail.get('exit_s')} s",
                     "sigkill": str(detail.get("worker", "")),
                     "pg_restart": f"down {detail.get('total_s')} s"}.get(fault["kind"], "")
            table.add_row(fault["kind"], str(fault["at_s"]), str(fault["duration_s"]),
                          str(fault["baseline_per_s"]), str(fault["lowest_per_s"]),
                          str(fault["recovery_s"]), str(fault["in_flight_at_fault"]),
                          str(fault["stragglers"]), str(fault["last_in_flight_done_s"]), shown)
        out.print(table)
    if "deliveries" in result:
        d = result["deliveries"]
        s = result["submit"]
        out.print(
            f"calls {result['workload']['calls']:,}, accepted {s['accepted']:,} in "
            f"{s['seconds']} s (requests {s['requests']:,}, sent again {s['retries']:,}, "
            f"answers {s['answers']}, slowest {s['slowest_answer_s']} s); all terminal "
            f"{result['run_seconds']} s after the first submit")
        outcomes = {k: v for k, v in result["outcomes"].items() if k != "unexpected_examples"}
        out.print(f"outcomes {outcomes}")
        out.print(
            f"deliveries {d['requests']:,} for {d['distinct_keys']:,} attempts: "
            f"{d['duplicate_deliveries']} duplicates ({d['keys_delivered_more_than_once']} "
            f"keys delivered more than once, at most {d['most_deliveries_of_one_key']} times); "
            f"answers {d['by_action']}")
        g = result["graceful_shutdown"]
        out.print(f"graceful stops (SIGTERM → exit): under load "
                  f"{[x['exit_s'] for x in g['under_load']]} s; idle, at the end "
                  f"{[x['exit_s'] for x in g['at_end']]} s")
    if result.get("out"):
        out.print(f"JSON: {result['out']}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    out_path = args.out or REPO_ROOT / "bench-results" / f"chaos-{stamp}.json"
    log_dir = out_path.with_suffix("")
    log_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine_info(("eventsourcing", "psycopg", "psycopg-pool", "fastapi",
                                 "uvicorn", "httpx", "pgserver")),
        "logs": str(log_dir),
        "error": None,
        "ok": False,
    }
    code = 2
    try:
        run(args, result, log_dir)
        code = 0 if result["ok"] else 1
    except (ChaosError, KeyboardInterrupt) as error:
        result["error"] = f"{type(error).__name__}: {error}"
    except Exception as error:
        result["error"] = f"{type(error).__name__}: {error}"
        console.print_exception()
    result["out"] = str(out_path)
    out_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    report(result)
    return code


if __name__ == "__main__":
    sys.exit(main())
