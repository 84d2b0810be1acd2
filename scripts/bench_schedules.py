#!/usr/bin/env python
"""Recurring schedules at scale (issue 18): fire lateness, duplicates and missing nominal times
with a worker SIGKILLed, and missed fires after a downtime.

    .venv/bin/python scripts/bench_schedules.py            # both phases, full size (~20 min)
    .venv/bin/python scripts/bench_schedules.py --quick    # 300 schedules for 2 min, short downtime
    .venv/bin/python scripts/bench_schedules.py --phases scale --json /tmp/s.json

The stack is scripts/chaos_stack.py's (a fresh database on a private embedded PostgreSQL, or
on ``--database-url``; ``duecall api``; ``duecall worker`` processes, each also keeping the
read models; the recording target harness/recording_target.py), one stack per phase.

Phase ``scale`` (issue 18: "10,000 schedules each firing every minute on one PostgreSQL:
fire lateness p99 <= 100 ms measured at the target, 0 duplicate and 0 missing nominal times
over 10 minutes with 2 worker processes, one SIGKILLed and restarted meanwhile"):
``--schedules`` schedules are created through ``POST /v1/schedules`` (``--concurrency``
clients), schedule i every ``--interval`` s with ``anchor`` = a whole minute + i *
interval / N (phases spread evenly; exact to the microsecond), the spec's other fields at
their defaults (on_missed latest, catch-up window 60 s, overlap allow_all, no jitter), its
call ``POST <target>/s/<i>`` (timeout 10 s). Then, after ``--warmup`` s, the measured
window of ``--window`` s: at ``--kill-at`` of it one worker is SIGKILLed, and a new one is
started ``--restart-after`` s later; the run goes on ``--drain`` s after the window so that
late fires of its last nominal times arrive too. The nominal times counted are every
schedule's in [window start, window end].

How an arrival is attributed to its nominal time (the robust way): a fire's call carries no
nominal time itself (the template is static; the target sees ``Duecall-Id: <call id>`` and
``Idempotency-Key: <call id>:<attempt>``), so after the run the schedules' fires are listed
through ``GET /v1/schedules/{id}/fires`` (duecall's own record: call id -> nominal time,
kind), newest first until before the window; each arrival's call id gives its nominal time
(and its path ``/s/<i>`` its schedule, checked against the fire's). An arrival whose call
id no fire lists is mapped to the nearest nominal time of its path's schedule (anchor +
k * interval) and counted as ``unattributed``. Nearest-nominal mapping alone would be
wrong for a fire more than half an interval late, and would hide a duplicate fire of the
next nominal time.

Per (schedule, nominal time) in the window: ``missing`` = no arrival; ``duplicate`` = more
than one distinct call id arrived; ``re-sent`` = an attempt of the same call delivered again
(a killed worker's attempt made again by another: at-least-once delivery, not a duplicate
fire), counted apart, as are deliveries of attempts > 1. Lateness = first arrival at the
target - nominal time, overall, for the nominal times in the minute after the kill and by
minute of the window. CPU of each process (sampled every second from /proc: a killed
worker's last second is lost) and of the PostgreSQL server's processes (bench_proc.py) over
the window, per fire.

Phase ``downtime`` (issue 18: "Workers down 3 minutes under a 1-minute schedule: latest
fires exactly once within 5 s of the restart; all with max_catchup 100 fires the missed
times, at the capped rate, no more"): one worker; three schedules with catch-up window =
interval: ``latest`` (every ``--down-interval`` s, on_missed latest), ``all`` (same interval,
on_missed all, max_catchup ``--max-catchup``, catchup_rate_per_second ``--catchup-rate``) and
``all-capped`` (every 1 s, on_missed all, the same cap: it misses more times than
max_catchup). After the first fire the worker is stopped (``--down-signal``) mid-interval for
``--down-seconds``, then a worker is started. Reported from the fires lists and the target:
for latest, the fires whose nominal time fell in the downtime (want exactly 1) and when the
first arrived after the restart (want <= 5 s); for all, the missed nominal times fired (want
every one, each once), the spacing of their due times and arrivals against 1 / rate; for
all-capped, the catch-up fires (want exactly max_catchup: the newest ones) and their spacing.

Output: tables on stdout (with the load average: other work on the machine shows in the
figures), JSON with ``--json PATH``, the processes' logs in
``bench-results/schedules-<timestamp>/``. Exit code 0 when the run completed (the figures
say whether the targets were met), 2 on an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from _harness import (  # puts the repository root on sys.path, for harness.* below
    HelpFormatter,
    add_stack_options,
    check_env_items,
    percentile,
    rounded,
    run_phases,
)
from bench_phases import ProgressLike
from bench_proc import PostgresProcesses, cpu_seconds, machine_busy_seconds
from bench_report import fmt
from chaos_stack import ChaosError, Database, Stack
from rich.console import Console
from rich.table import Table

from harness.processes import REPO_ROOT, Managed, console
from harness.recording_target import fetch_records

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = 1_000_000
LATENESS_P99_TARGET_MS = 100.0
LATEST_WITHIN_S = 5.0
PATH_PREFIX = "/s/"
CALL_TIMEOUT_S = 10.0


# -- options ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench_schedules.py",
        description="Recurring schedules at scale (issue 18): lateness at the target, "
        "duplicate and missing nominal times with a worker SIGKILLed; missed fires after a "
        "downtime. See the module docstring.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--phases", default="scale,downtime", help="comma-separated: scale, downtime"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small fast run: 300 schedules for 120 s; downtime of 30 s under "
        "a 5 s interval, max_catchup 10 (explicit options still win)",
    )
    scale = parser.add_argument_group("phase scale")
    scale.add_argument("--schedules", type=int, default=None, help="schedules [10000]")
    scale.add_argument("--interval", type=int, default=60, help="each schedule's interval, s")
    scale.add_argument("--window", type=float, default=None, help="measured window, s [600]")
    scale.add_argument(
        "--warmup",
        type=float,
        default=10.0,
        help="s between the last schedule created and the window's start",
    )
    scale.add_argument(
        "--drain",
        type=float,
        default=15.0,
        help="s the run goes on after the window (late fires of its end)",
    )
    scale.add_argument(
        "--kill-at",
        type=float,
        default=1 / 3,
        help="SIGKILL a worker at this fraction of the window (negative: never)",
    )
    scale.add_argument(
        "--restart-after",
        type=float,
        default=5.0,
        help="s after the SIGKILL a new worker is started",
    )
    scale.add_argument("--workers", type=int, default=2, help="`duecall worker` processes")
    scale.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help="HTTP clients creating the schedules (and listing their fires)",
    )
    down = parser.add_argument_group("phase downtime")
    down.add_argument(
        "--down-seconds", type=float, default=None, help="s the workers stay down [180]"
    )
    down.add_argument(
        "--down-interval",
        type=int,
        default=None,
        help="interval of the latest and all schedules, s [60]",
    )
    down.add_argument(
        "--down-signal", choices=("kill", "term"), default="kill", help="how the worker is stopped"
    )
    down.add_argument("--max-catchup", type=int, default=None, help="max_catchup [100]")
    down.add_argument(
        "--catchup-rate",
        type=float,
        default=None,
        help="catchup_rate_per_second of the all schedules [10]",
    )
    stack = add_stack_options(parser)
    stack.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    stack.add_argument(
        "--logs",
        type=Path,
        default=None,
        help="the processes' logs [bench-results/schedules-<timestamp>/]",
    )
    stack.add_argument("--no-progress", action="store_true", help="no live progress display")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "schedules": (300, 10_000),
        "window": (120.0, 600.0),
        "down_seconds": (30.0, 180.0),
        "down_interval": (5, 60),
        "max_catchup": (10, 100),
        "catchup_rate": (5.0, 10.0),
    }
    for name, (small, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    args.phase_list = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not args.phase_list or set(args.phase_list) - {"scale", "downtime"}:
        parser.error("--phases takes scale and/or downtime")
    if args.schedules < 1 or args.interval < 1 or args.window <= 0 or args.workers < 1:
        parser.error("--schedules, --interval, --window and --workers must be positive")
    if args.down_interval < 2 or args.down_seconds <= 0 or args.max_catchup < 1:
        parser.error("--down-interval >= 2, --down-seconds > 0, --max-catchup >= 1")
    if args.catchup_rate <= 0 or args.concurrency < 1:
        parser.error("--catchup-rate and --concurrency must be positive")
    check_env_items(parser, args.env)
    args.pg_restart_command = None  # chaos_stack.Database's option: never restarted here
    args.apis, args.read_model_procs = 1, 0  # chaos_stack.Stack's layout: one API, workers
    return args


# -- small helpers ----------------------------------------------------------------------------


def iso_us(us: int) -> str:
    """An instant in microseconds since the epoch, as RFC 3339 (exact)."""
    return (EPOCH + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def us_of(text: str) -> int:
    """An RFC 3339 instant as microseconds since the epoch (exact)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment - EPOCH) // timedelta(microseconds=1)


def ms_stats(values: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "count": len(values),
        **{f"p{q}": rounded(percentile(values, q), 1) for q in (50, 90, 99)},
        "max": rounded(max(values), 1) if values else None,
        "min": rounded(min(values), 1) if values else None,
    }


def call_of(record: Sequence[Any]) -> tuple[str | None, int]:
    """A target record's call id and attempt (``Idempotency-Key: <call id>:<attempt>``)."""
    key, duecall_id = record[1], record[2]
    call_id, _, attempt = (key or "").rpartition(":")
    try:
        number = int(attempt)
    except ValueError:
        number = 1
    return (duecall_id or call_id or None), number


def index_of(path: str) -> int | None:
    if not path.startswith(PATH_PREFIX):
        return None
    try:
        return int(path[len(PATH_PREFIX) :].split("/", maxsplit=1)[0])
    except ValueError:
        return None


@dataclass
class Fire:
    index: int
    nominal_us: int
    kind: str
    due_us: int


@dataclass
class Created:
    ids: dict[int, str] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_async(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def api_client(stack: Stack, concurrency: int) -> httpx.AsyncClient:
    assert stack.api is not None
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        base_url=stack.api.url,
        limits=limits,
        timeout=60.0,
        trust_env=False,
        headers={"Authorization": f"Bearer {stack.key}", "Content-Type": "application/json"},
    )


async def post_created(
    client: httpx.AsyncClient,
    path: str,
    content: bytes,
    errors: list[str],
    latencies_ms: list[float],
) -> str | None:
    """POST ``content`` to ``path``: the id of what it created (201), else None with the
    error in ``errors``; 429/503 are sent again (a few times, backing off), a transport error
    is not (the thing may exist)."""
    for attempt in range(6):
        began = time.perf_counter()
        try:
            response = await client.post(path, content=content)
        except httpx.HTTPError as error:
            errors.append(f"{type(error).__name__}: {error}")
            return None
        if response.status_code in (429, 503) and attempt < 5:
            await asyncio.sleep(0.2 * (attempt + 1))
            continue
        latencies_ms.append((time.perf_counter() - began) * 1000)
        if response.status_code == 201:
            return str(orjson.loads(response.content)["id"])
        errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
        return None
    return None


async def create_schedules(
    stack: Stack, bodies: Sequence[dict[str, Any]], concurrency: int, advance: Callable[[int], None]
) -> Created:
    """POST each body to /v1/schedules, ``concurrency`` at a time (``post_created``)."""
    out = Created()
    next_index = 0

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < len(bodies):
            index = next_index
            next_index += 1
            created = await post_created(
                client, "/v1/schedules", orjson.dumps(bodies[index]), out.errors, out.latencies_ms
            )
            if created is not None:
                out.ids[index] = created
            advance(1)

    began = time.monotonic()
    async with api_client(stack, concurrency) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    out.seconds = time.monotonic() - began
    return out


async def list_fires(
    stack: Stack,
    ids: dict[int, str],
    since_us: int,
    concurrency: int,
    advance: Callable[[int], None],
) -> tuple[dict[str, Fire], list[str]]:
    """Every schedule's fires from the newest back to (and including) the first with a
    nominal time before ``since_us``: call id -> Fire."""
    fires: dict[str, Fire] = {}
    errors: list[str] = []
    todo = list(ids.items())
    position = 0

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal position
        while position < len(todo):
            index, schedule_id = todo[position]
            position += 1
            cursor: int | None = None
            for _page in range(10_000):  # bounded: a page per 100 fires
                params: dict[str, int] = {"limit": 100}
                if cursor is not None:
                    params["cursor"] = cursor
                try:
                    response = await client.get(f"/v1/schedules/{schedule_id}/fires", params=params)
                except httpx.HTTPError as error:
                    errors.append(f"{schedule_id}: {type(error).__name__}: {error}")
                    break
                if response.status_code != 200:
                    errors.append(
                        f"{schedule_id}: HTTP {response.status_code}: {response.text[:200]}"
                    )
                    break
                page = orjson.loads(response.content)
                oldest = None
                for item in page["items"]:
                    fire = Fire(index, us_of(item["nominal"]), item["kind"], us_of(item["due_at"]))
                    fires[item["call_id"]] = fire
                    oldest = fire.nominal_us
                cursor = page.get("next_cursor")
                if cursor is None or oldest is None or oldest < since_us:
                    break
            advance(1)

    async with api_client(stack, concurrency) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    return fires, errors


# -- the stack --------------------------------------------------------------------------------


class PhaseStack:
    """A fresh database and chaos_stack's Stack with ``workers`` workers, for one phase."""

    def __init__(self, args: argparse.Namespace, workers: int, log_dir: Path) -> None:
        self.args = argparse.Namespace(**{**vars(args), "workers": workers})
        self.log_dir = log_dir
        self.db = Database(self.args)
        self.stack: Stack | None = None

    def __enter__(self) -> Stack:
        console.print(f"[{self.log_dir.name}] starting PostgreSQL and the stack ...")
        self.db.start()
        self.stack = Stack(self.args, self.db, self.log_dir)
        self.stack.start()
        time.sleep(1.0)  # the workers connect
        for worker in self.stack.workers:
            if not worker.alive():
                raise ChaosError(f"{worker.name} exited:\n{worker.log_tail()}")
        return self.stack

    def __exit__(self, *exc: object) -> None:
        if self.stack is not None:
            self.stack.stop_all()
        self.db.close(keep=False)


class CpuSampler:
    """Each process's CPU seconds, read every ``sample()``; the last reading of each is kept
    (a process that died keeps its last one)."""

    def __init__(self, procs: Callable[[], list[Managed]]) -> None:
        self._procs = procs
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.roles: dict[str, str] = {}

    def sample(self) -> None:
        for proc in self._procs():
            if not proc.alive():
                continue
            cpu = cpu_seconds(proc.pid)
            if cpu is None:
                continue
            self.first.setdefault(proc.name, cpu)
            self.last[proc.name] = cpu
            self.roles[proc.name] = proc.role

    def start(self) -> None:
        self.sample()

    def spent(self, born_during: set[str]) -> dict[str, float]:
        """CPU seconds since ``start`` (for those started since: since they were born)."""
        return {
            name: round(self.last[name] - (0.0 if name in born_during else self.first[name]), 3)
            for name in self.last
        }


# -- phase scale ------------------------------------------------------------------------------


def scale_bodies(
    target_url: str, count: int, interval: int
) -> tuple[list[dict[str, Any]], list[int]]:
    """Each schedule's body and anchor (µs): a whole minute in the past + i * interval / N."""
    base = int(time.time()) // 60 * 60 - 60
    anchors = [base * US + i * interval * US // count for i in range(count)]
    bodies = [
        {
            "name": f"bench-{i}",
            "spec": {"interval_seconds": interval, "anchor": iso_us(anchors[i])},
            "call": {
                "request": {
                    "method": "POST",
                    "url": f"{target_url}{PATH_PREFIX}{i}",
                    "timeout_seconds": CALL_TIMEOUT_S,
                }
            },
        }
        for i in range(count)
    ]
    return bodies, anchors


def phase_scale(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schedules": args.schedules,
        "interval_s": args.interval,
        "window_s": args.window,
        "workers": args.workers,
    }
    with (
        PhaseStack(args, args.workers, log_dir) as stack,
        ProgressLike(not args.no_progress) as progress,
    ):
        assert stack.target is not None
        out["database"] = stack.db.server_info()
        out["settings"] = stack.duecall_settings
        bodies, anchors = scale_bodies(stack.target.url, args.schedules, args.interval)
        console.print(f"creating {args.schedules:,} schedules ({args.concurrency} clients) ...")
        advance, _ = progress.task("creating schedules", args.schedules)
        created: Created = run_async(create_schedules(stack, bodies, args.concurrency, advance))
        out["create"] = {
            "created": len(created.ids),
            "errors": len(created.errors),
            "error_examples": created.errors[:5],
            "seconds": round(created.seconds, 2),
            "per_s": round(len(created.ids) / created.seconds, 1) if created.seconds else None,
            "latency_ms": ms_stats(created.latencies_ms),
        }
        console.print(
            f"  {len(created.ids):,} created in {created.seconds:.1f} s "
            f"({out['create']['per_s']}/s), {len(created.errors)} errors"
        )
        window = run_window(args, stack, progress, out)
        console.print("stopping the workers; listing every schedule's fires ...")
        for worker in stack.live_workers():
            stack.terminate(worker, timeout=40)
        advance, _ = progress.task("listing fires", len(created.ids))
        began = time.monotonic()
        fires, errors = run_async(
            list_fires(stack, created.ids, window["start_us"], args.concurrency, advance)
        )
        out["fires_listing"] = {
            "fires": len(fires),
            "errors": len(errors),
            "error_examples": errors[:5],
            "seconds": round(time.monotonic() - began, 1),
        }
        records = fetch_records(stack.target.url)
        out["target_records"] = len(records)
        out.update(analyse_scale(records, fires, anchors, set(created.ids), args.interval, window))
        out["cpu"] = cpu_report(window, out["fires_in_window"])
    return out


class Killer:
    """SIGKILLs a worker at ``kill_at`` (time.time()), starts a new one ``restart_after``
    s later."""

    def __init__(
        self,
        stack: Stack,
        sampler: CpuSampler,
        kill_at: float | None,
        restart_after: float,
        start: float,
    ) -> None:
        self._stack, self._sampler = stack, sampler
        self._kill_at, self._restart_after, self._start = kill_at, restart_after, start
        self.killed: Managed | None = None
        self.killed_at: float | None = None
        self.restarted_at: float | None = None
        self.born: set[str] = set()

    def step(self, now: float) -> None:
        if self._kill_at is not None and self.killed is None and now >= self._kill_at:
            self.killed = self._stack.live_workers()[0]
            self._sampler.sample()  # its CPU up to now (a SIGKILLed process's last is lost)
            self.killed.popen.send_signal(signal.SIGKILL)
            self.killed.popen.wait(timeout=10)
            self.killed_at = time.time()
            console.print(
                f"  +{self.killed_at - self._start:.0f} s: SIGKILL "
                f"{self.killed.name} (pid {self.killed.pid})"
            )
        if (
            self.killed_at is not None
            and self.restarted_at is None
            and now >= self.killed_at + self._restart_after
        ):
            new = self._stack.start_worker()
            self.born.add(new.name)
            self.restarted_at = time.time()
            console.print(
                f"  +{self.restarted_at - self._start:.0f} s: started {new.name} (pid {new.pid})"
            )


def run_window(
    args: argparse.Namespace, stack: Stack, progress: ProgressLike, out: dict[str, Any]
) -> dict[str, Any]:
    """Wait the warm-up, then the window (SIGKILL and restart a worker at ``--kill-at``),
    then the drain; CPU, load average and the PostgreSQL server's CPU over the window."""
    assert stack.target is not None
    time.sleep(args.warmup)
    start = time.time()
    end = start + args.window
    kill_at = start + args.kill_at * args.window if args.kill_at >= 0 else None
    sampler = CpuSampler(lambda: stack.processes.all)
    killer = Killer(stack, sampler, kill_at, args.restart_after, start)
    conn = psycopg.connect(stack.db.url, autocommit=True)
    postgres = PostgresProcesses.find(conn)
    pg_before = postgres.snapshot()
    busy_before = machine_busy_seconds()
    sampler.start()
    loads: list[float] = []
    cpu_s: dict[str, float] = {}
    pg_cpu: dict[str, float] | None = None
    console.print(
        f"window of {args.window:g} s"
        + (f"; SIGKILL a worker at +{kill_at - start:.0f} s" if kill_at else "")
    )
    _, show = progress.task("window (s)", int(args.window + args.drain))
    last_status = time.monotonic()
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        for tick in range(int((args.window + args.drain) * 10) + 100):  # bounded
            now = time.time()
            if now < end:
                sampler.sample()
                if tick % 50 == 0:
                    loads.append(os.getloadavg()[0])
            elif not cpu_s:
                cpu_s = sampler.spent(killer.born)
                pg_cpu = PostgresProcesses.breakdown(
                    pg_before, postgres.snapshot(), stack.db.name, {conn.info.backend_pid}
                )
                busy_after = machine_busy_seconds()
                out["machine_busy_cpu_s"] = (
                    None
                    if busy_before is None or busy_after is None
                    else round(busy_after - busy_before, 1)
                )
            if now >= end + args.drain:
                break
            killer.step(now)
            for proc in stack.processes.all:
                if proc is not killer.killed and not proc.alive():
                    raise ChaosError(
                        f"{proc.name} exited with code {proc.popen.returncode}:\n{proc.log_tail()}"
                    )
            show(int(min(now, end + args.drain) - start))
            if time.monotonic() - last_status >= 30:
                last_status = time.monotonic()
                count = client.get(f"{stack.target.url}/__count").json()["count"]
                console.print(
                    f"  +{now - start:4.0f} s  arrivals {count:,}  workers "
                    f"{len(stack.live_workers())}  load {os.getloadavg()[0]:.2f}"
                )
            time.sleep(0.1)
    conn.close()
    loads.append(os.getloadavg()[0])
    out["load_average_1m"] = {
        "min": round(min(loads), 2),
        "max": round(max(loads), 2),
        "mean": round(sum(loads) / len(loads), 2),
        "at_end": [round(x, 2) for x in os.getloadavg()],
    }
    return {
        "start_us": int(start * US),
        "end_us": int(end * US),
        "kill_us": None if killer.killed_at is None else int(killer.killed_at * US),
        "restart_us": None if killer.restarted_at is None else int(killer.restarted_at * US),
        "cpu_s": cpu_s,
        "postgres_cpu_s": pg_cpu,
        "roles": sampler.roles,
        "seconds": args.window,
    }


def analyse_scale(
    records: Sequence[Sequence[Any]],
    fires: dict[str, Fire],
    anchors: list[int],
    created: set[int],
    interval: int,
    window: dict[str, Any],
) -> dict[str, Any]:
    """Arrivals against the nominal times in the window (see the module docstring)."""
    start, end, kill = window["start_us"], window["end_us"], window["kill_us"]
    step = interval * US
    first_arrival: dict[tuple[int, int], dict[str, float]] = defaultdict(dict)  # -> call: s
    deliveries: Counter[tuple[str, int]] = Counter()
    unattributed = path_mismatch = later_attempts = outside = 0
    for record in records:
        index = index_of(record[3])
        call_id, attempt = call_of(record)
        if index is None or call_id is None:
            continue
        fire = fires.get(call_id)
        if fire is None:
            nominal = anchors[index] + round((record[0] * US - anchors[index]) / step) * step
            if start <= nominal <= end:
                unattributed += 1
        else:
            nominal = fire.nominal_us
            if fire.index != index:
                path_mismatch += 1
        if not start <= nominal <= end:
            outside += 1
            continue
        deliveries[call_id, attempt] += 1
        later_attempts += attempt > 1
        calls = first_arrival[index, nominal]
        calls[call_id] = min(calls.get(call_id, record[0]), record[0])
    expected = {
        (i, anchors[i] + k * step)
        for i in created
        for k in range(-((anchors[i] - start) // step), (end - anchors[i]) // step + 1)
    }
    missing = expected - first_arrival.keys()
    unexpected = first_arrival.keys() - expected
    duplicates = {key: calls for key, calls in first_arrival.items() if len(calls) > 1}
    fired_keys = {(f.index, f.nominal_us) for f in fires.values()}
    lateness: list[float] = []
    after_kill: list[float] = []
    others: list[float] = []
    by_minute: dict[int, list[float]] = defaultdict(list)
    for (_, nominal), calls in first_arrival.items():
        late_ms = (min(calls.values()) * US - nominal) / 1000
        lateness.append(late_ms)
        by_minute[(nominal - start) // (60 * US)].append(late_ms)
        if kill is not None and kill <= nominal < kill + 60 * US:
            after_kill.append(late_ms)
        else:
            others.append(late_ms)
    late_by_second = Counter(min(int(x // 1000), 60) for x in lateness if x >= 1000)
    return {
        "fires_in_window": len(expected),
        "arrivals_in_window": sum(deliveries.values()),
        "nominal_times_arrived": len(first_arrival),
        "missing": len(missing),
        "missing_not_fired": len(missing - fired_keys),
        "missing_examples": [[i, iso_us(n)] for i, n in sorted(missing)[:10]],
        "duplicates": len(duplicates),
        "duplicate_examples": [
            [i, iso_us(n), sorted(c)] for (i, n), c in sorted(duplicates.items())[:10]
        ],
        "unexpected_nominal_times": len(unexpected),
        "resent_attempts": sum(n - 1 for n in deliveries.values()),
        "deliveries_of_attempts_after_the_first": later_attempts,
        "unattributed_arrivals": unattributed,
        "path_mismatches": path_mismatch,
        "arrivals_outside_window": outside,
        "lateness_ms": ms_stats(lateness),
        "lateness_after_kill_ms": ms_stats(after_kill),
        "lateness_outside_kill_minute_ms": ms_stats(others),
        "lateness_by_minute_ms": [
            {"minute": m, **ms_stats(v)} for m, v in sorted(by_minute.items())
        ],
        "lateness_over_1s_by_second": {str(k): v for k, v in sorted(late_by_second.items())},
        "early": sum(1 for x in lateness if x < 0),
        "window": {
            k: (iso_us(v) if isinstance(v, int) and k.endswith("_us") else v)
            for k, v in window.items()
            if k.endswith("_us")
        },
    }


def cpu_report(window: dict[str, Any], fires: int) -> dict[str, Any]:
    cpu: dict[str, float] = window["cpu_s"]
    pg = window["postgres_cpu_s"] or {}
    duecall = sum(v for k, v in cpu.items() if window["roles"].get(k) in ("api", "worker"))
    per_fire = {
        name: round(seconds * 1000 / fires, 3) if fires else None for name, seconds in cpu.items()
    }
    pg_duecall = pg.get("duecall")
    per_fire["postgres"] = round(pg_duecall * 1000 / fires, 3) if pg_duecall and fires else None
    both = duecall + (pg_duecall or 0.0)
    per_fire["duecall and postgres"] = round(both * 1000 / fires, 3) if fires else None
    return {
        "cpu_s": cpu,
        "postgres_cpu_s": pg,
        "cpu_ms_per_fire": per_fire,
        "utilisation": {name: round(s / window["seconds"], 2) for name, s in cpu.items()}
        | {"postgres": round((pg_duecall or 0.0) / window["seconds"], 2)},
    }


# -- phase downtime ---------------------------------------------------------------------------


def downtime_bodies(
    args: argparse.Namespace, target_url: str, anchor_us: int
) -> dict[str, dict[str, Any]]:
    def body(name: str, index: int, interval: int, **spec: Any) -> dict[str, Any]:
        return {
            "name": f"downtime-{name}",
            "spec": {
                "interval_seconds": interval,
                "anchor": iso_us(anchor_us),
                "catchup_window_seconds": interval,
                **spec,
            },
            "call": {
                "request": {
                    "method": "POST",
                    "url": f"{target_url}{PATH_PREFIX}{index}",
                    "timeout_seconds": CALL_TIMEOUT_S,
                }
            },
        }

    capped = {
        "on_missed": "all",
        "max_catchup": args.max_catchup,
        "catchup_rate_per_second": args.catchup_rate,
    }
    return {
        "latest": body("latest", 0, args.down_interval, on_missed="latest"),
        "all": body("all", 1, args.down_interval, **capped),
        "all-capped": body("all-capped", 2, 1, **capped),
    }


def phase_downtime(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {
        "down_seconds": args.down_seconds,
        "interval_s": args.down_interval,
        "max_catchup": args.max_catchup,
        "catchup_rate": args.catchup_rate,
        "signal": args.down_signal,
    }
    interval = args.down_interval
    with PhaseStack(args, 1, log_dir) as stack:
        assert stack.target is not None
        anchor = int((time.time() + 3) * US)
        bodies = downtime_bodies(args, stack.target.url, anchor)
        ids: dict[str, str] = {}
        with httpx.Client(
            base_url=stack.api.url if stack.api else "",
            timeout=30.0,
            trust_env=False,
            headers={"Authorization": f"Bearer {stack.key}"},
        ) as client:
            for name, body in bodies.items():
                response = client.post("/v1/schedules", json=body)
                if response.status_code != 201:
                    raise ChaosError(
                        f"creating {name}: HTTP {response.status_code}: {response.text[:300]}"
                    )
                ids[name] = response.json()["id"]
        stop_at_us = anchor + interval * US // 2  # mid-interval, after the first fire
        time.sleep(max(0.0, stop_at_us / US - time.time()))
        stopped_at = time.time()
        for worker in stack.live_workers():
            if args.down_signal == "kill":
                worker.popen.send_signal(signal.SIGKILL)
                worker.popen.wait(timeout=10)
            else:
                stack.terminate(worker, timeout=40)
        console.print(f"workers stopped ({args.down_signal}); down for {args.down_seconds:g} s ...")
        time.sleep(max(0.0, stopped_at + args.down_seconds - time.time()))
        restarted_at = time.time()
        stack.start_worker()
        observe = max(20.0, 1.5 * args.max_catchup / args.catchup_rate + 10)
        console.print(f"worker started; observing {observe:.0f} s ...")
        time.sleep(observe)
        for worker in stack.live_workers():
            stack.terminate(worker, timeout=40)
        index_ids = dict(enumerate(ids.values()))
        fires, errors = run_async(list_fires(stack, index_ids, 0, 4, lambda _n: None))
        records = fetch_records(stack.target.url)
    out["fires_listing_errors"] = errors[:5]
    out["stopped_at"], out["restarted_at"] = (
        iso_us(int(stopped_at * US)),
        iso_us(int(restarted_at * US)),
    )
    out.update(
        analyse_downtime(
            records, fires, list(ids), int(stopped_at * US), int(restarted_at * US), anchor, args
        )
    )
    return out


def analyse_downtime(
    records: Sequence[Sequence[Any]],
    fires: dict[str, Fire],
    names: list[str],
    stopped_us: int,
    restarted_us: int,
    anchor_us: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    arrivals: dict[str, list[float]] = defaultdict(list)  # call id -> arrival times
    for record in records:
        call_id, _ = call_of(record)
        if call_id is not None:
            arrivals[call_id].append(record[0])
    gap_ms = 1000 / args.catchup_rate
    result: dict[str, Any] = {}
    for index, name in enumerate(names):
        interval = 1 if name == "all-capped" else args.down_interval
        step = interval * US
        own = [(f, cid) for cid, f in fires.items() if f.index == index]
        # nominal times in the downtime: after the stop (those planned before it excluded:
        # the lookahead) up to the restart
        first_k = -(-(stopped_us + 2 * US - anchor_us) // step)
        last_k = (restarted_us - anchor_us) // step
        down = {anchor_us + k * step for k in range(first_k, last_k + 1)}
        fired = [(f, cid) for f, cid in own if f.nominal_us in down]
        by_nominal = Counter(f.nominal_us for f, _ in fired)
        arrived = sorted(min(arrivals[cid]) for _, cid in fired if arrivals.get(cid))
        catch_ups = sorted((f for f, _ in own if f.kind == "catch_up"), key=lambda f: f.due_us)
        catch_up_arrivals = sorted(
            min(arrivals[cid]) for f, cid in own if f.kind == "catch_up" and arrivals.get(cid)
        )
        entry: dict[str, Any] = {
            "nominal_times_in_downtime": len(down),
            "fired_in_downtime": len(fired),
            "arrived": len(arrived),
            "fired_twice": sum(1 for n in by_nominal.values() if n > 1),
            "not_fired": len(down - by_nominal.keys()),
            "catch_up_fires": len(catch_ups),
            "kinds": dict(Counter(f.kind for f, _ in fired)),
            "first_arrival_after_restart_s": (
                round(arrived[0] - restarted_us / US, 3) if arrived else None
            ),
            "last_arrival_after_restart_s": (
                round(arrived[-1] - restarted_us / US, 3) if arrived else None
            ),
        }
        if name != "latest":
            due_gaps = [(b.due_us - a.due_us) / 1000 for a, b in pairwise(catch_ups)]
            arrival_gaps = [(b - a) * 1000 for a, b in pairwise(catch_up_arrivals)]
            grid = range(
                min((f.nominal_us for f in catch_ups), default=0),
                max((f.nominal_us for f, _ in own), default=-1) + 1,
                step,
            )
            fired_all = {f.nominal_us for f, _ in own}
            entry |= {
                "cap_gap_ms": round(gap_ms, 1),
                "catch_up_due_gap_ms": ms_stats(due_gaps),
                "catch_up_arrival_gap_ms": ms_stats(arrival_gaps),
                "catch_up_span_s": (
                    round((catch_up_arrivals[-1] - catch_up_arrivals[0]), 2)
                    if len(catch_up_arrivals) > 1
                    else None
                ),
                # the newest missed times: none unfired from the oldest catch-up on
                "catch_ups_are_the_newest": all(n in fired_all for n in grid),
            }
        result[name] = entry
    latest, every, capped = result["latest"], result["all"], result["all-capped"]
    result["verdicts"] = {
        "latest_fires_once": latest["fired_in_downtime"] == 1 and latest["arrived"] == 1,
        "latest_within_5s": (
            latest["first_arrival_after_restart_s"] is not None
            and latest["first_arrival_after_restart_s"] <= LATEST_WITHIN_S
        ),
        "all_fires_every_missed_time_once": every["not_fired"] == 0
        and every["fired_twice"] == 0
        and every["fired_in_downtime"] == every["nominal_times_in_downtime"],
        "all_capped_rate": _at_cap(every, gap_ms) and _at_cap(capped, gap_ms),
        "all_capped_no_more_than_max_catchup": capped["fired_twice"] == 0
        and capped["catch_up_fires"] <= args.max_catchup
        and (
            capped["catch_up_fires"] == args.max_catchup
            or capped["nominal_times_in_downtime"] < args.max_catchup
        )
        and capped["catch_ups_are_the_newest"],
    }
    return result


def _at_cap(entry: dict[str, Any], gap_ms: float) -> bool:
    """The catch-up fires' due times are at least 1 / rate apart (1 ms of rounding)."""
    low = entry["catch_up_due_gap_ms"]["min"]
    return low is None or low >= gap_ms - 1


# -- report -----------------------------------------------------------------------------------


def yes_no(ok: bool | None) -> str:
    return "" if ok is None else ("[green]yes[/]" if ok else "[red]no[/]")


def print_report(result: dict[str, Any]) -> None:
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=120)
    scale = result["phases"].get("scale")
    if scale and "lateness_ms" in scale:
        late, after = scale["lateness_ms"], scale["lateness_after_kill_ms"]
        table = Table(
            title=f"Schedules at scale: {scale['schedules']:,} schedules every "
            f"{scale['interval_s']} s, {scale['window_s']:g} s window, "
            f"{scale['workers']} workers (one SIGKILLed)"
        )
        for column in ("figure", "measured", "target", "met"):
            table.add_column(column)
        c = scale["create"]
        table.add_row(
            "schedules created",
            f"{c['created']:,} in {c['seconds']} s: "
            f"{fmt(c['per_s'])}/s (p50 {fmt(c['latency_ms']['p50'])} / p99 "
            f"{fmt(c['latency_ms']['p99'])} ms)",
            "",
            "",
        )
        table.add_row(
            "fires expected in the window",
            f"{scale['fires_in_window']:,} ({scale['fires_in_window'] / scale['window_s']:.1f}/s)",
            "",
            "",
        )
        table.add_row("arrivals (deliveries)", f"{scale['arrivals_in_window']:,}", "", "")
        table.add_row(
            "lateness p50 / p90 / p99 / max",
            _late(late),
            "p99 ≤ 100 ms",
            yes_no(late["p99"] is not None and late["p99"] <= LATENESS_P99_TARGET_MS),
        )
        table.add_row("... in the minute after the kill", _late(after), "", "")
        table.add_row(
            "... in every other minute", _late(scale["lateness_outside_kill_minute_ms"]), "", ""
        )
        table.add_row(
            "p99 by minute of the window",
            " ".join(fmt(m["p99"], digits=0) for m in scale["lateness_by_minute_ms"]) + " ms",
            "",
            "",
        )
        table.add_row(
            "duplicate nominal times",
            str(scale["duplicates"]),
            "0",
            yes_no(scale["duplicates"] == 0),
        )
        table.add_row(
            "missing nominal times",
            f"{scale['missing']} ({scale['missing_not_fired']} never fired)",
            "0",
            yes_no(scale["missing"] == 0),
        )
        table.add_row("re-sent attempts (same call)", str(scale["resent_attempts"]), "", "")
        table.add_row(
            "attempts > 1 delivered", str(scale["deliveries_of_attempts_after_the_first"]), "", ""
        )
        table.add_row(
            "unattributed arrivals / path mismatches",
            f"{scale['unattributed_arrivals']} / {scale['path_mismatches']}",
            "0",
            "",
        )
        table.add_row(
            "fires late ≥ 1 s, by whole second",
            str(scale["lateness_over_1s_by_second"] or "none"),
            "",
            "",
        )
        out.print(table)
        cpu = Table(title="CPU over the window")
        for column in ("process", "CPU s", "utilisation", "ms per fire"):
            cpu.add_column(column)
        for name, seconds in scale["cpu"]["cpu_s"].items():
            cpu.add_row(
                name,
                fmt(seconds, digits=1),
                fmt(scale["cpu"]["utilisation"][name], digits=2),
                fmt(scale["cpu"]["cpu_ms_per_fire"].get(name), digits=3),
            )
        pg = scale["cpu"]["postgres_cpu_s"] or {}
        cpu.add_row(
            "postgres (duecall's)",
            fmt(pg.get("duecall"), digits=1),
            fmt(scale["cpu"]["utilisation"]["postgres"], digits=2),
            fmt(scale["cpu"]["cpu_ms_per_fire"]["postgres"], digits=3),
        )
        cpu.add_row(
            "duecall and postgres",
            "",
            "",
            fmt(scale["cpu"]["cpu_ms_per_fire"]["duecall and postgres"], digits=3),
        )
        out.print(cpu)
        load = scale["load_average_1m"]
        out.print(
            f"machine busy over the window: {scale.get('machine_busy_cpu_s')} CPU s of "
            f"{result['machine'].get('nproc')} CPUs x {scale['window_s']:g}; 1-minute load "
            f"average min {load['min']} / mean {load['mean']} / max {load['max']}"
        )
    down = result["phases"].get("downtime")
    if down and "verdicts" in down:
        table = Table(
            title=f"Workers down {down['down_seconds']:g} s under a "
            f"{down['interval_s']} s schedule (max_catchup {down['max_catchup']}, "
            f"{down['catchup_rate']:g}/s)"
        )
        for column in (
            "schedule",
            "in downtime",
            "fired",
            "twice",
            "catch-ups",
            "first / last after restart",
            "catch-up due gap min/p50",
            "arrival gap p50",
        ):
            table.add_column(column)
        for name in ("latest", "all", "all-capped"):
            e = down[name]
            due = e.get("catch_up_due_gap_ms", {})
            arr = e.get("catch_up_arrival_gap_ms", {})
            table.add_row(
                name,
                str(e["nominal_times_in_downtime"]),
                str(e["fired_in_downtime"]),
                str(e["fired_twice"]),
                str(e["catch_up_fires"]),
                f"{fmt(e['first_arrival_after_restart_s'], ' s', 2)} / "
                f"{fmt(e['last_arrival_after_restart_s'], ' s', 2)}",
                f"{fmt(due.get('min'))} / {fmt(due.get('p50'))} ms" if due else "",
                f"{fmt(arr.get('p50'))} ms" if arr else "",
            )
        out.print(table)
        for name, ok in down["verdicts"].items():
            out.print(f"  {name}: {yes_no(ok)}")
    m = result["machine"]
    out.print(
        f"machine: {m.get('nproc')} CPUs ({m.get('cpu_model', '?')}); load average at "
        f"start {m.get('load_average_at_start')}, at end {result.get('load_at_end')}; "
        f"duecall {m.get('duecall_commit')}"
    )
    if result.get("error"):
        out.print(f"[red]error:[/] {result['error']}")


def _late(s: dict[str, Any]) -> str:
    return (
        f"{fmt(s['p50'])} / {fmt(s['p90'])} / {fmt(s['p99'])} / {fmt(s['max'])} ms "
        f"(n={s['count']:,})"
    )


# -- main -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    log_dir = args.logs or REPO_ROOT / "bench-results" / f"schedules-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    result, code = run_phases(
        args,
        {"scale": phase_scale, "downtime": phase_downtime},
        log_dir,
        ("eventsourcing", "psycopg", "fastapi", "uvicorn", "httpx"),
    )
    if args.json is not None:
        with contextlib.suppress(OSError):
            args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print_report(result)
    return code


if __name__ == "__main__":
    sys.exit(main())
