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
               The JSON keeps every sample (``projector_lag.series``): which models lagged,
               and when.
2. submit      ``--submits`` single ``POST /v1/service-calls`` at ``--concurrency`` clients,
               calls due in one day (the workers have nothing to do); rate and p50/p99 latency.
3. batch       ``--batch-calls`` calls due in one day through the batch endpoint, workers
               idle: the batch-submit rate.
4. precision   ``--precision-calls`` calls due ``--precision-lead`` s ahead, spread evenly over
               ``--precision-spread`` s (explicit ``due_at``, one batch request); lateness =
               arrival at the target - due time, matched by ``Idempotency-Key: <id>:1``.

Issue 17's everyday load (not in the default run; ``--phases steady,sequential`` or ``all``;
details in bench_steady.py):

5. steady-<R>  for each R in ``--steady-rates`` (``steady`` runs them all): single submits
               due now at R per second for ``--steady-seconds``, open loop; CPU ms per call of
               every process and of PostgreSQL, lateness p50/p99, projector lag, wake-ups and
               transactions per call.
6. sequential  one client, one keep-alive connection, ``--sequential-calls`` submits one after
               another as fast as answered, due now (the workers run); rate, p50/p99 latency.

PostgreSQL's CPU (every phase: ``postgres_cpu_s``) is the server's process tree, split by kind
of process, the bench's own connections apart (bench_proc.py says how). With ``--statements``
each phase also lists pg_stat_statements (bench_statements.py: needs a server that preloads
it).

CPU seconds of every process (duecall processes, Postgres postmaster + backends when the
server's processes are visible on this machine, the target, this load generator) are read from
/proc per phase; peak RSS (VmHWM) at the end. Results: a table on stdout and JSON in
``bench-results/bench-<timestamp>.json``.

This module is the run and its command line; its parts are beside it: bench_stack.py (the
database and the processes), bench_proc.py (CPU and RSS from /proc), bench_load.py (the load
generator), bench_readback.py (the read model, the log's head, the target's records, projector
lag), bench_phases.py (the warm-up and the phases) and bench_report.py (the figures, the tables
and the notes).

Over 300 lines on purpose: this docstring is the bench's manual, and
the command line that names every phase's knobs sits with it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _harness import REPO_ROOT, HelpFormatter, check_env_items, machine_info
from bench_phases import PHASES, STEADY, measure, phase_of, warm_up
from bench_profile import Profilers, find_py_spy
from bench_readback import bench_connection, settle
from bench_report import (
    TARGETS,
    _hwm_mb,
    _stdout,
    anomalies_of,
    figures_of,
    idle_figures,
    per_call_cpu,
    per_call_figures,
    print_report,
    process_report,
    summary_line,
)
from bench_stack import (
    BenchError,
    Database,
    Processes,
    Stack,
    console,
    server_info,
    start_stack,
)
from bench_statements import Statements
from bench_syscalls import KEYS, Tracers

from harness.processes import Managed

FULL = {"calls": 20_000, "submits": 5_000, "batch_calls": 10_000, "precision_calls": 200,
        "warmup": 200, "steady_seconds": 30.0, "sequential_calls": 2_000, "idle_seconds": 10.0}
QUICK = {"calls": 2_000, "submits": 1_000, "batch_calls": 2_000, "precision_calls": 200,
         "warmup": 100, "steady_seconds": 5.0, "sequential_calls": 500, "idle_seconds": 3.0}
DEFAULT_PHASES = "throughput,submit,batch,precision"
ALL_PHASES = f"{DEFAULT_PHASES},idle,steady,sequential"


# -- options --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench.py",
        description="Benchmark duecall end to end (issues 7 and 17). See the module docstring "
        "for how each figure is measured.",
        formatter_class=HelpFormatter,
    )
    _workload_options(parser)
    _everyday_options(parser)
    _stack_and_run_options(parser)
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.phases = expand_phases(parser, args.phases, args.steady_rates)
    if args.profile is not None:
        args.py_spy = find_py_spy(args.py_spy)
    if args.steady_seconds <= 0 or args.steady_max_in_flight < 1 or args.body_bytes < 0:
        parser.error("--steady-seconds and --steady-max-in-flight must be above 0, "
                     "--body-bytes 0 or more")
    if args.projection_procs < 0:
        parser.error("--projection-procs must be 0 or more")
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be 1..1000")
    for name in ("calls", "submits", "batch_calls", "precision_calls", "api_procs",
                 "worker_procs", "concurrency", "batch_concurrency", "sequential_calls"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    check_env_items(parser, args.env)
    return args


def expand_phases(parser: argparse.ArgumentParser, phases: str, rates_text: str) -> list[str]:
    """``--phases`` as a list: 'all' for every phase, 'steady' for one steady-<R> per rate of
    ``--steady-rates`` (``parser.error`` exits on a name it does not know)."""
    try:
        rates = [float(r) for r in rates_text.split(",") if r.strip()]
    except ValueError:
        parser.error(f"--steady-rates {rates_text!r}: numbers, comma-separated")
    if not rates or min(rates) <= 0:
        parser.error("--steady-rates: at least one rate, each above 0")
    chosen = ALL_PHASES if phases.strip() == "all" else phases
    out: list[str] = []
    for name in (p.strip() for p in chosen.split(",") if p.strip()):
        if name == "steady":
            out += [f"{STEADY}{r:g}" for r in rates]
        elif name.startswith(STEADY):
            try:
                out.append(f"{STEADY}{float(name.removeprefix(STEADY)):g}")
            except ValueError:
                parser.error(f"phase {name!r}: steady-<calls per second>")
        elif name in PHASES:
            out.append(name)
        else:
            parser.error(f"unknown phase: {name}")
    return out


def _workload_options(parser: argparse.ArgumentParser) -> None:
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
    size.add_argument("--phases", default=DEFAULT_PHASES,
                      help="comma-separated phases to run, in this order: throughput, submit, "
                      "batch, precision, idle, steady (one steady-<R> per --steady-rates), "
                      "steady-<R> (R calls/s), sequential; 'all' = " + ALL_PHASES)


def _everyday_options(parser: argparse.ArgumentParser) -> None:
    size = parser.add_argument_group("everyday load (issue 17: steady and sequential phases)")
    size.add_argument("--steady-rates", default="100,300",
                      help="steady: calls per second, one steady-<R> phase each")
    size.add_argument("--steady-seconds", type=float, default=None,
                      help=f"steady: seconds of sending at each rate [{FULL['steady_seconds']:g}; "
                      f"quick {QUICK['steady_seconds']:g}]")
    size.add_argument("--steady-max-in-flight", type=int, default=256,
                      help="steady: unanswered submits at most (beyond it a send waits and is "
                      "counted late)")
    size.add_argument("--sequential-calls", type=int, default=None,
                      help=f"sequential: submits one after another [{FULL['sequential_calls']:,}; "
                      f"quick {QUICK['sequential_calls']}]")
    size.add_argument("--body-bytes", type=int, default=200,
                      help="steady and sequential: bytes of the JSON body each call sends")
    size.add_argument("--idle-seconds", type=float, default=None,
                      help=f"idle: seconds with nothing submitted [{FULL['idle_seconds']:g}; "
                      f"quick {QUICK['idle_seconds']:g}]")


def _stack_and_run_options(parser: argparse.ArgumentParser) -> None:
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
    run.add_argument("--profile", type=Path, default=None, metavar="DIR",
                     help="py-spy every duecall process during each phase: raw profiles in "
                     "DIR/<phase>-<process>.txt, a summary in the JSON (bench_profile.py)")
    run.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    run.add_argument("--py-spy", default=None, help="py-spy's path [PATH, then beside python]")
    run.add_argument("--syscalls", type=Path, default=None, metavar="DIR",
                     help="strace every duecall process during each phase: round trips to "
                     "PostgreSQL and waits per call (bench_syscalls.py; disturbs the timings: "
                     "a run of its own)")
    run.add_argument("--statements", action="store_true",
                     help="list pg_stat_statements per phase (the server must preload it; "
                     "the counters of the whole server are reset at each phase's start)")


# -- the run --------------------------------------------------------------------------------------


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


def run_phases(args: argparse.Namespace, stack: Stack, conn: psycopg.Connection[Any],
               result: dict[str, Any]) -> None:
    """Each phase in turn, once the read models have caught up with the one before."""
    statements = Statements(conn) if args.statements else None
    if statements is not None and not statements.available:
        console.print(f"[yellow]--statements: pg_stat_statements not available: "
                      f"{statements.why_not}[/]")
    profilers = Profilers(args.py_spy, args.profile, args.profile_rate) if args.profile else None
    tracers = Tracers(args.syscalls, stack.db.url) if args.syscalls else None
    for name in args.phases:
        console.print(f"[bold]phase {name}[/]")
        phase = phase_of(name)
        settled = settle(conn, args.timeout, stack.check_alive)
        for watcher in (profilers, tracers):
            if watcher:
                watcher.start(stack, name)
        try:
            outcome = measure(stack, functools.partial(phase, args, stack, conn), conn,
                              statements)
        finally:
            profiles = profilers.stop(None) if profilers else None
            syscalls = tracers.stop(None) if tracers else None
        outcome["read_models_settled_s"] = settled
        if name == "throughput":
            per_call_cpu(outcome)
        elif name.startswith(STEADY) or name == "sequential":
            per_call_figures(outcome, outcome["created"])
        elif name == "idle":
            idle_figures(outcome)
        if profiles is not None:
            outcome["profiles"] = with_per_call(profiles, outcome)
        if syscalls is not None:
            outcome["syscalls"] = syscalls_per_call(syscalls, outcome)
        result["phases"][name] = outcome
        console.print(f"  {summary_line(name, outcome)}")


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
        with bench_connection(db.url) as conn:
            console.print(f"warm-up: {args.warmup} calls through the pipeline")
            warm_up(args, stack, conn)
            run_phases(args, stack, conn, result)
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


def with_per_call(profiles: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    """The profiles' summaries, with ms per call of the phase's calls: of GIL-holding time
    (``ms_per_call``) and as the function's share of the process's CPU per call from /proc
    (``ms_per_call_cpu``; for the idle phase, per second)."""
    calls = outcome.get("created") or outcome.get("calls")
    per = outcome.get("cpu_ms_per_call") or outcome.get("cpu_ms_per_s") or {}
    for name, summary in profiles.items():
        if "samples" not in summary:
            continue
        cpu = per.get(name)
        if calls:
            summary["python_cpu_ms_per_call"] = round(summary["python_cpu_ms"] / calls, 3)
        summary["process_cpu_ms_per_call"] = cpu
        for row in (*summary["top_own"], *summary["top_inclusive"],
                    *summary["top_inclusive_duecall"]):
            if calls:
                row["ms_per_call"] = round(row["ms"] / calls, 4)
            if cpu is not None:
                row["ms_per_call_cpu"] = round(row["share"] * cpu, 4)
    return profiles


def syscalls_per_call(syscalls: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    """The system-call counts per call of the phase (the idle phase: per second)."""
    unit = outcome.get("created") or outcome.get("calls") or outcome.get("wall_s")
    for counts in syscalls.values():
        if unit and "pg_sends" in counts:
            counts["per_call" if outcome.get("created") or outcome.get("calls") else
                   "per_second"] = {k: round(counts[k] / unit, 2) for k in KEYS}
    return syscalls


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
