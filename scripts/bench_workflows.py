#!/usr/bin/env python
"""Workflow runs (issue 19): the engine's overhead between a step's recorded outcome and its
successor's request, and a chaos run of 1,000 runs with workers SIGKILLed.

    .venv/bin/python scripts/bench_workflows.py                       # both phases (~5 min)
    .venv/bin/python scripts/bench_workflows.py --quick               # a small run (~1 min)
    .venv/bin/python scripts/bench_workflows.py --phases chaos --runs 200 --json /tmp/w.json

The stack is scripts/chaos_stack.py's, as scripts/bench_schedules.py starts it (one per
phase): a fresh database on a private embedded PostgreSQL (or on ``--database-url``),
``duecall api``, ``duecall worker`` processes (each also keeping the read models) and the
recording target harness/recording_target.py, which records every request as it arrives
(``time.time()`` when its head was read, its ``Idempotency-Key`` and path). Runs are
submitted through ``POST /v1/workflows/runs``, at ``--rate`` / ``--chaos-rate`` runs per
second. Every step's URL ends with ``{{ run.id }}-<step id>``, so the target's path names the
run and the step, and scripts/chaos_audit.py's checks of calls apply with that segment as a
call's token.

Phase ``overhead`` (issue 19: "Engine overhead <= 20 ms p95 between a step's recorded outcome
and its successor's request"): ``--overhead-runs`` runs, alternately a 5-step chain (s1 -> s2
-> s3 -> s4 -> s5) and a diamond (a -> b, c -> d), every step answered 200 at once, with
``--overhead-workers`` workers, after 4 runs of warm-up (not measured). For each step that
needs others, the overhead is the time from the latest recorded outcome of the steps it needs
to its own call's first request arriving at the target. *Recorded outcome* is the timestamp of
the predecessor call's terminal event (``ServiceCall.Succeeded``), not the ``workflow``
message's creation: the event is stamped in the worker in the transaction that also publishes
the message (the message's ``available_at`` is the same instant, to within microseconds), and
it stays in the store, whereas the message is deleted when the workflow loop consumes it. The
event is stamped before that transaction commits, so the figure includes the commit
(conservative by a millisecond or two); all processes share this machine's clock. The figure is
split at the successor's ``StepStarted`` timestamp: *workflow loop* (the outcome's commit, the
notify, the claim, loading and advancing the run, up to the order) and *dispatch* (recording
the step's call with its ``start`` message, the timer's claim, the execution loop, the wire).
Also shown, outside the issue's measure: *request to request*, from the latest first request of
the steps it needs to its own, at the target (their answers, and the worker gathering outcomes
for ``DUECALL_OUTCOME_LINGER_SECONDS`` before recording them, included). Printed: p50 / p95 /
p99 / max for all steps and by shape, against the target (p95 <= 20 ms), and each process's CPU
(from /proc, sampled every 0.2 s; the PostgreSQL server's by bench_proc.py) from the first
submit to the last run's end, per step made.

Phase ``chaos`` (issue 19: "1,000 runs of a 5-step DAG with workers SIGKILLed during the run:
0 lost or doubled steps, every re-made step request carries its step's idempotency key, read
models agree"): ``--runs`` runs of a diamond plus a tail (a -> b, c -> d -> e; step c answers
503 to its first attempt, so every run has a retried step), with ``--workers`` workers; every
``--kill-interval`` s while runs are submitted a random worker is SIGKILLed and a new one
started (scripts/chaos_faults.py). Then, with the read models caught up and the workers
stopped, checked:

* every run's API answer (``GET /v1/workflows/runs/{id}``) says ``succeeded``, and so do its
  events; every step succeeded, started once (one ``StepStarted``), on exactly one call: the
  step key ``wf:<run>:<step>`` maps to one call id (a step made as two calls is a doubled
  step), whose origin is ``workflow:<run>``, which succeeded once and reached the target;
* the answer agrees with the events: each step's call id, key, state and status code, the
  run's version (its number of events) and counts;
* every request the target saw carries ``Idempotency-Key: <that step's call id>:<attempt>``
  of an attempt the store recorded, and ``Duecall-Id: <call id>`` (signing): what the worker
  sends (application/dispatch/execution_loop.py; infrastructure/http_sender.py puts
  duecall's headers over the call's own, so a step cannot send a key of its own); a re-sent
  attempt (a killed worker's attempt made again) carries the same key: at least once,
  allowed, counted;
* scripts/chaos_audit.py's invariants over the calls: zero lost, zero doubled (terminal
  events, attempts, executions), one call per token, every attempt complete, the outbox
  empty, the read models agree with the event store (calls, executions; each run's row: its
  status, version, step counts and states, as its answer has them) and with a rebuild
  from position 0 (``duecall projections rebuild``), every hash chain verifies.

Output: tables on stdout (with the load average: the machine is shared, other work shows in
the figures), JSON at ``--json`` [bench-results/workflows-<timestamp>.json], the processes'
logs beside it. Exit code 0 when the run completed and every chaos invariant held (the
overhead figures say whether its target was met), 1 when an invariant is broken, 2 on an
error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
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
from bench_proc import PostgresProcesses
from bench_report import fmt
from bench_schedules import CpuSampler, PhaseStack, api_client, post_created, run_async
from chaos import rebuild_all, wait_projections
from chaos_audit import audit_deliveries, audit_read_models, audit_store, checksums, invariants
from chaos_faults import FaultInjector, plan_faults
from chaos_stack import ChaosError, Stack
from rich.console import Console
from rich.table import Table
from workflow_audit import (
    audit_run_rows,
    audit_runs,
    first_arrivals,
    overhead,
    read_calls,
    read_runs,
    resent,
)

from harness.processes import REPO_ROOT, console
from harness.recording_target import fetch_records

RUNS = "/v1/workflows/runs"
OVERHEAD_P95_TARGET_MS = 20.0
CALL_TIMEOUT_S = 10.0
WARMUP_RUNS = 4  # the overhead phase's first runs (fresh processes, cold caches): not measured
RUN_TERMINAL_TOPICS = [f"duecall:WorkflowRun.{n}" for n in ("Succeeded", "Failed", "Cancelled")]

# each shape's steps and what each needs (in order: a step's needs come before it)
NEEDS: dict[str, dict[str, list[str]]] = {
    "chain": {"s1": [], "s2": ["s1"], "s3": ["s2"], "s4": ["s3"], "s5": ["s4"]},
    "diamond": {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]},
    "diamond-tail": {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d"]},
}
# chaos_audit's invariants of scripts/chaos.py's faults, which this run does not inject
NOT_MEASURED_HERE = ("graceful stops within the shutdown timeout (+3 s)",
                     "API errors are problem+json (no stack traces)")
FAIL_ONCE = {"diamond-tail": "c"}  # the step whose first attempt is answered 503


# -- options ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench_workflows.py",
        description="Workflow runs (issue 19): engine overhead between a step's recorded "
        "outcome and its successor's request; 1,000 runs with workers SIGKILLed, then "
        "nothing lost or doubled. See the module docstring.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--phases", default="overhead,chaos",
                        help="comma-separated: overhead, chaos")
    parser.add_argument("--quick", action="store_true",
                        help="a small run: 40 overhead runs, 100 chaos runs (explicit options "
                        "still win)")
    over = parser.add_argument_group("phase overhead")
    over.add_argument("--overhead-runs", type=int, default=None,
                      help="runs, alternately a 5-step chain and a diamond [240]")
    over.add_argument("--rate", type=float, default=4.0, help="runs submitted per second")
    over.add_argument("--overhead-workers", type=int, default=2,
                      help="`duecall worker` processes")
    chaos = parser.add_argument_group("phase chaos")
    chaos.add_argument("--runs", type=int, default=None,
                       help="runs of the diamond plus a tail [1000]")
    chaos.add_argument("--chaos-rate", type=float, default=10.0,
                       help="runs submitted per second")
    chaos.add_argument("--workers", type=int, default=3,
                       help="`duecall worker` processes (2 or more)")
    chaos.add_argument("--kill-interval", type=float, default=5.0,
                       help="s between SIGKILLs of a random worker while runs are submitted "
                       "(a new one is started at once; 0: none)")
    chaos.add_argument("--seed", type=int, default=19, help="seed of the victims' choice")
    chaos.add_argument("--timeout", type=float, default=900.0,
                       help="s the runs of a phase may take to finish")
    stack = add_stack_options(parser)
    stack.add_argument("--concurrency", type=int, default=16,
                       help="HTTP clients submitting runs and reading them back")
    stack.add_argument("--json", type=Path, default=None,
                       help="write the result here [bench-results/workflows-<timestamp>.json]")
    stack.add_argument("--no-progress", action="store_true", help="no live progress display")
    args = parser.parse_args(argv)
    for name, small, full in (("overhead_runs", 40, 240), ("runs", 100, 1000)):
        if getattr(args, name) is None:
            setattr(args, name, small if args.quick else full)
    args.phase_list = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not args.phase_list or set(args.phase_list) - {"overhead", "chaos"}:
        parser.error("--phases takes overhead and/or chaos")
    if args.overhead_runs < 2 or args.runs < 1 or args.rate <= 0 or args.chaos_rate <= 0:
        parser.error("--overhead-runs >= 2, --runs >= 1, --rate and --chaos-rate > 0")
    if args.workers < 2 or args.overhead_workers < 1 or args.concurrency < 1:
        parser.error("--workers >= 2, --overhead-workers >= 1, --concurrency >= 1")
    check_env_items(parser, args.env)
    # chaos_stack's options: one API, the workers keep the read models, never restarted
    args.apis, args.read_model_procs, args.pg_restart_command = 1, 0, None
    return args


# -- runs: definitions, submitting, waiting, reading back -------------------------------------


def definition(shape: str, target_url: str) -> dict[str, Any]:
    """The shape's definition: each step POSTs to ``<target>/wf/<step>/<run id>-<step>``
    (``/fail/1/...`` for the step that fails once, retried 0.2 s later)."""
    steps = []
    for step, needs in NEEDS[shape].items():
        prefix = "fail/1" if FAIL_ONCE.get(shape) == step else f"wf/{step}"
        body: dict[str, Any] = {
            "id": step,
            "request": {"method": "POST", "url": f"{target_url}/{prefix}/{{{{ run.id }}}}-{step}",
                        "timeout_seconds": CALL_TIMEOUT_S},
        }
        if needs:
            body["needs"] = needs
        if FAIL_ONCE.get(shape) == step:
            body["retry_policy"] = {"max_attempts": 5, "initial_backoff_seconds": 0.2}
        steps.append(body)
    return {"name": f"bench-{shape}", "steps": steps}


class Submitted:
    def __init__(self) -> None:
        self.shape_of: dict[str, str] = {}  # run id -> shape
        self.errors: list[str] = []
        self.latencies_ms: list[float] = []


async def submit_runs(stack: Stack, shapes: Sequence[str], rate: float, concurrency: int,
                      advance: Callable[[int], None]) -> Submitted:
    """POST a run of each shape, the i-th at start + i / rate (``post_created``: a transport
    error is reported, not sent again)."""
    assert stack.target is not None
    bodies = {s: orjson.dumps({"definition": definition(s, stack.target.url)})
              for s in set(shapes)}
    out = Submitted()
    gate = asyncio.Semaphore(concurrency)
    start = time.time()

    async def one(client: httpx.AsyncClient, index: int, shape: str) -> None:
        await asyncio.sleep(max(0.0, start + index / rate - time.time()))
        async with gate:
            run_id = await post_created(client, RUNS, bodies[shape], out.errors,
                                        out.latencies_ms)
        if run_id is not None:
            out.shape_of[run_id] = shape
        advance(1)

    async with api_client(stack, concurrency) as client:
        await asyncio.gather(*(one(client, i, s) for i, s in enumerate(shapes)))
    return out


def runs_finished(url: str) -> int | None:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute("SELECT count(DISTINCT originator_id) FROM duecall_events "
                               "WHERE topic = ANY(%s)", (RUN_TERMINAL_TOPICS,)).fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row else 0


def wait_finished(stack: Stack, expected: Callable[[], int], done_submitting: threading.Event,
                  deadline: float, show: Callable[[int], None],
                  check: Callable[[], None] = lambda: None) -> float:
    """Until every run submitted has a terminal event (those finished before are not counted);
    time.time() then."""
    last_print = time.monotonic()
    before = runs_finished(stack.db.url) or 0
    while True:
        check()
        finished = runs_finished(stack.db.url)
        if finished is not None:
            finished -= before
            show(finished)
        if finished is not None and done_submitting.is_set() and finished >= expected():
            return time.time()
        if time.monotonic() > deadline:
            raise ChaosError(f"runs still unfinished after --timeout: {finished} of "
                             f"{expected()}")
        if time.monotonic() - last_print >= 10:
            last_print = time.monotonic()
            console.print(f"  runs finished {finished}/{expected()}  workers "
                          f"{len(stack.live_workers())}  load {os.getloadavg()[0]:.2f}")
        time.sleep(0.2)


async def read_answers(stack: Stack, run_ids: Sequence[str],
                       concurrency: int) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Each run as GET /v1/workflows/runs/{id} answers it."""
    answers: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    todo = list(run_ids)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while todo:
            run_id = todo.pop()
            answer = await client.get(f"{RUNS}/{run_id}")
            if answer.status_code == 200:
                answers[run_id] = orjson.loads(answer.content)
            else:
                errors.append(f"{run_id}: HTTP {answer.status_code}: {answer.text[:200]}")

    async with api_client(stack, concurrency) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    return answers, errors


def drive(args: argparse.Namespace, stack: Stack, progress: ProgressLike,
          shapes: Sequence[str], rate: float,
          check: Callable[[], None] = lambda: None) -> tuple[Submitted, float]:
    """Submit the runs (in a thread) while waiting for them to finish."""
    advance, _ = progress.task("submitting runs", len(shapes))
    _, show = progress.task("runs finished", len(shapes))
    done = threading.Event()
    holder: dict[str, Any] = {}

    def submit() -> None:
        try:
            holder["submitted"] = run_async(
                submit_runs(stack, shapes, rate, args.concurrency, advance))
        except BaseException as error:
            holder["error"] = error
        finally:
            done.set()

    threading.Thread(target=submit, name="submitter", daemon=True).start()
    deadline = time.monotonic() + len(shapes) / rate + args.timeout

    def expected() -> int:
        submitted = holder.get("submitted")
        return len(submitted.shape_of) if submitted else len(shapes)

    def checked() -> None:
        if "error" in holder:
            raise ChaosError(f"submitting failed: {holder['error']!r}")
        check()

    ended = wait_finished(stack, expected, done, deadline, show, checked)
    submitted: Submitted = holder["submitted"]
    if submitted.errors:
        raise ChaosError(f"{len(submitted.errors)} submits failed, e.g. {submitted.errors[:3]}")
    return submitted, ended


# -- phase overhead ---------------------------------------------------------------------------


def stats(values: Sequence[float]) -> dict[str, float | int | None]:
    return {"count": len(values),
            **{f"p{q}": rounded(percentile(values, q), 1) for q in (50, 95, 99)},
            "max": rounded(max(values), 1) if values else None}


def phase_overhead(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    shapes = ["chain" if i % 2 == 0 else "diamond" for i in range(args.overhead_runs)]
    out: dict[str, Any] = {"runs": len(shapes), "rate_per_s": args.rate,
                           "workers": args.overhead_workers}
    with (PhaseStack(args, args.overhead_workers, log_dir) as stack,
          ProgressLike(not args.no_progress) as progress):
        assert stack.target is not None
        out["database"] = stack.db.server_info()
        out["settings"] = stack.duecall_settings
        console.print(f"warm-up: {WARMUP_RUNS} runs, not measured ...")
        drive(args, stack, progress, shapes[:WARMUP_RUNS], args.rate)
        sampler = CpuSampler(lambda: stack.processes.all)
        conn = psycopg.connect(stack.db.url, autocommit=True)
        postgres = PostgresProcesses.find(conn)
        pg_before = postgres.snapshot()
        sampler.start()
        began = time.time()
        loads = [os.getloadavg()[0]]
        console.print(f"overhead: {len(shapes)} runs at {args.rate:g}/s, "
                      f"{args.overhead_workers} workers ...")

        def sample() -> None:
            sampler.sample()
            stack.processes.check_alive()
            if len(loads) < (time.time() - began) / 5:
                loads.append(os.getloadavg()[0])

        submitted, ended = drive(args, stack, progress, shapes, args.rate, sample)
        sampler.sample()
        pg_cpu = PostgresProcesses.breakdown(pg_before, postgres.snapshot(), stack.db.name,
                                             {conn.info.backend_pid})
        conn.close()
        seconds = ended - began
        records = fetch_records(stack.target.url)
        runs, calls = read_runs(stack.db.url), read_calls(stack.db.url)
    steps_made = sum(len(NEEDS[s]) for s in submitted.shape_of.values())
    found = overhead(runs, calls, first_arrivals(records), NEEDS, submitted.shape_of)
    out["overhead_ms"] = {part: {shape: stats(v) for shape, v in sorted(by.items())}
                          for part, by in found.items() if part != "not_measured"}
    out["not_measured"] = found["not_measured"]
    out["submit_ms"] = stats(submitted.latencies_ms)
    out["seconds"] = round(seconds, 2)
    out["steps_made"] = steps_made
    out["target_requests"] = len(records)
    cpu = sampler.spent(set())
    pg = (pg_cpu or {}).get("duecall")
    out["cpu_s"] = {**cpu, "postgres (duecall's)": pg}
    out["cpu_ms_per_step"] = {name: (round(s * 1000 / steps_made, 3) if s is not None else None)
                              for name, s in out["cpu_s"].items()}
    duecall = sum(s for n, s in cpu.items() if sampler.roles.get(n) in ("api", "worker"))
    out["cpu_ms_per_step"]["duecall and postgres"] = round(
        (duecall + (pg or 0.0)) * 1000 / steps_made, 3)
    out["load_average_1m"] = {"min": round(min(loads), 2), "max": round(max(loads), 2),
                              "at_end": [round(x, 2) for x in os.getloadavg()]}
    p95 = out["overhead_ms"]["total"].get("all", {}).get("p95")
    out["target_met"] = p95 is not None and p95 <= OVERHEAD_P95_TARGET_MS
    return out


# -- phase chaos ------------------------------------------------------------------------------


def phase_chaos(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    shape = "diamond-tail"
    steps = list(NEEDS[shape])
    out: dict[str, Any] = {"runs": args.runs, "rate_per_s": args.chaos_rate,
                           "workers": args.workers, "kill_interval_s": args.kill_interval,
                           "shape": NEEDS[shape], "fails_once": FAIL_ONCE[shape]}
    fault_args = argparse.Namespace(
        calls=args.runs, rate=args.chaos_rate, kill_interval=args.kill_interval,
        pg_restart_at=-1, sigterm_at=-1, api_kill_at=-1, quiet_window=0.0, seed=args.seed,
        pg_down=0.0)
    with (PhaseStack(args, args.workers, log_dir) as stack,
          ProgressLike(not args.no_progress) as progress):
        assert stack.target is not None
        out["database"] = stack.db.server_info()
        out["settings"] = stack.duecall_settings
        injector = FaultInjector(fault_args, stack, plan_faults(fault_args, False))
        began = time.time()
        faulting = threading.Thread(target=injector.run, args=(began,), name="faults",
                                    daemon=True)
        faulting.start()
        console.print(f"chaos: {args.runs} runs at {args.chaos_rate:g}/s, {args.workers} "
                      f"workers, {len(injector.faults)} SIGKILLs planned ...")

        def check() -> None:
            if injector.error is not None:
                raise ChaosError(f"a fault failed: {injector.error!r}")

        submitted, ended = drive(args, stack, progress, [shape] * args.runs, args.chaos_rate,
                                 check)
        faulting.join(timeout=60)
        out["seconds"] = round(ended - began, 2)
        out["kills"] = [{"at_s": round(f.at - began, 2), **f.detail}
                        for f in injector.faults if f.at]
        console.print("reading the runs back; waiting for the read models ...")
        answers, errors = run_async(read_answers(stack, list(submitted.shape_of),
                                                 args.concurrency))
        caught_up = wait_projections(stack.db.url, 120.0)
        live = checksums(stack.db.url)
        for worker in stack.live_workers():
            stack.terminate(worker, timeout=60)
        console.print("auditing the runs, the calls, the deliveries and the read models ...")
        accepted = {f"{run_id}-{step}": str(answer["steps"][step]["call_id"])
                    for run_id, answer in answers.items() for step in steps
                    if answer["steps"].get(step, {}).get("call_id")}
        records = fetch_records(stack.target.url)
        store = audit_store(stack.db.url, accepted)
        deliveries = audit_deliveries(records, accepted, store)
        models = audit_read_models(stack.db.url, store)
        runs = read_runs(stack.db.url)
        models["problems"].update(audit_run_rows(stack.db.url, answers, runs))
        workflows = audit_runs(answers, runs, read_calls(stack.db.url), records, steps)
        console.print("rebuilding every read model from position 0 ...")
        rebuild_all(stack.env, stack.processes.log_dir)
        rebuilt = checksums(stack.db.url)
    models["caught_up_after_s"] = round(caught_up, 2)
    models["rebuilt_tables_differing"] = sorted(t for t in live if live[t] != rebuilt.get(t))
    out["answer_errors"] = errors[:5]
    out["event_store"] = {"figures": store.figures, "examples": store.examples}
    out["deliveries"] = {**deliveries, **resent(records)}
    out["read_models"] = models
    out["workflows"] = workflows
    checks = invariants(store, deliveries, models, refused=len(errors))
    for unmeasured in NOT_MEASURED_HERE:
        checks.pop(unmeasured, None)
    lost_or_doubled = sum(workflows["problems"].values())
    checks["every run succeeded; each step one call, started once, delivered; the API "
           "answer agrees with the events"] = {"ok": lost_or_doubled == 0,
                                               "count": lost_or_doubled}
    out["invariants"] = checks
    out["ok"] = all(item["ok"] for item in checks.values())
    return out


# -- report -----------------------------------------------------------------------------------


def yes_no(ok: bool | None) -> str:
    return "" if ok is None else ("[green]yes[/]" if ok else "[red]no[/]")


def _ms(s: dict[str, Any]) -> str:
    return (f"{fmt(s['p50'])} / {fmt(s['p95'])} / {fmt(s['p99'])} / {fmt(s['max'])} ms "
            f"(n={s['count']:,})")


def print_report(result: dict[str, Any]) -> None:
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=120)
    over = result["phases"].get("overhead")
    if over and "overhead_ms" in over:
        table = Table(title=f"Engine overhead: {over['runs']} runs (chain of 5, diamond) at "
                      f"{over['rate_per_s']:g}/s, {over['workers']} workers")
        for column in ("from -> to", "shape", "p50 / p95 / p99 / max", "target", "met"):
            table.add_column(column)
        names = {"total": "predecessor's outcome -> request at the target",
                 "workflow_loop": "... -> successor's StepStarted (workflow loop)",
                 "dispatch": "StepStarted -> request at the target (timer, send)",
                 "request_to_request": "predecessor's request -> successor's, at the target"}
        for part, label in names.items():
            for shape, s in over["overhead_ms"][part].items():
                is_all = part == "total" and shape == "all"
                table.add_row(label, shape, _ms(s),
                              "p95 ≤ 20 ms" if is_all else "",
                              yes_no(over["target_met"]) if is_all else "")
        out.print(table)
        cpu = Table(title=f"CPU over the phase ({over['seconds']} s, {over['steps_made']} steps)")
        for column in ("process", "CPU s", "ms per step"):
            cpu.add_column(column)
        for name, ms in over["cpu_ms_per_step"].items():
            cpu.add_row(name, fmt(over["cpu_s"].get(name), digits=2), fmt(ms, digits=3))
        out.print(cpu)
        load = over["load_average_1m"]
        out.print(f"1-minute load average min {load['min']} / max {load['max']}; "
                  f"not measured: {over['not_measured'] or 'none'}")
    chaos = result["phases"].get("chaos")
    if chaos and "invariants" in chaos:
        table = Table(title=f"Chaos: {chaos['runs']} runs of a diamond plus a tail at "
                      f"{chaos['rate_per_s']:g}/s, {chaos['workers']} workers, "
                      f"{len(chaos['kills'])} SIGKILLs, {chaos['seconds']} s")
        for column in ("invariant", "broken", "holds"):
            table.add_column(column)
        for name, item in chaos["invariants"].items():
            table.add_row(name, str(item["count"]), yes_no(item["ok"]))
        out.print(table)
        d = chaos["deliveries"]
        out.print(f"deliveries {d['requests']:,} of {d['distinct_keys']:,} attempts; re-sent "
                  f"(same call and attempt, at least once) {d['resent_deliveries']}; "
                  f"deliveries of attempts > 1 {d['deliveries_of_later_attempts']}")
        broken = {k: v for k, v in chaos["workflows"]["problems"].items() if v}
        if broken:
            out.print(f"[red]workflow problems:[/] {broken} {chaos['workflows']['examples']}")
    m = result["machine"]
    out.print(f"machine: {m.get('nproc')} CPUs ({m.get('cpu_model', '?')}), shared; load "
              f"average at start {m.get('load_average_at_start')}, at end "
              f"{result.get('load_at_end')}; duecall {m.get('duecall_commit')}")
    if result.get("error"):
        out.print(f"[red]error:[/] {result['error']}")


# -- main -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    out_path = args.json or REPO_ROOT / "bench-results" / f"workflows-{stamp}.json"
    log_dir = out_path.with_suffix("")
    log_dir.mkdir(parents=True, exist_ok=True)
    result, code = run_phases(args, {"overhead": phase_overhead, "chaos": phase_chaos}, log_dir,
                              ("eventsourcing", "psycopg", "fastapi", "uvicorn", "httpx"))
    if code == 0 and not result["phases"].get("chaos", {"ok": True})["ok"]:
        code = 1
    out_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print_report(result)
    console.print(f"JSON: {out_path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
