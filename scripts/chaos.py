#!/usr/bin/env python
"""Chaos run (issue 8): crashes, a database restart, slow and broken targets — nothing lost,
nothing doubled.

    .venv/bin/python scripts/chaos.py                 # 5,000 calls at 40/s, 3 workers, all faults
    .venv/bin/python scripts/chaos.py --calls 600 --rate 50 --kill-interval 4   # a short run
    .venv/bin/python scripts/chaos.py --apis 2 --workers 4 --read-model-procs 1 \
        --api-kill-at 0.5                          # a fleet; one API process SIGKILLed too

The stack is started as a user would start it: ``--apis`` ``duecall api`` processes (the
load goes round them; a submit that fails goes to the next) and ``--workers`` ``duecall
worker`` processes (each also runs the read models, unless ``--read-model-procs`` ``duecall
projections run`` processes do), on a fresh database on a private embedded
PostgreSQL in a temporary directory (so it can be restarted), or on ``--database-url`` (the
database is dropped afterwards; ``--pg-restart-command`` restarts that server). The target is
harness/recording_target.py in its own process: it records every delivery and misbehaves by
path (503 then 200, 503 with Retry-After, answers slower than the call's timeout, connection
resets).

The workload: ``--calls`` calls offered at ``--rate`` calls/s, in small batches (per-item
idempotency keys) and single submits (an Idempotency-Key header); a submit answered 503 (or not
at all) is sent again with the same keys until it is accepted. Mix: immediate, delayed 2-6 s,
failing once or twice with 503, 503 + Retry-After, slower than the timeout once, reset once,
and failing for good (3 attempts). Circuit breakers and concurrency limits are set out of the
way (they have their own tests): every call must end by its retry policy alone.

Faults, one at a time, while the workload is offered: SIGKILL a random worker every
``--kill-interval`` s (a new one is started at once); restart PostgreSQL once (stop, wait
``--pg-down`` s, start) at ``--pg-restart-at`` of the submit phase; SIGKILL the last API
process (not replaced) at ``--api-kill-at``; SIGTERM one worker (a
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
  * every event's hash chain verifies (duecall's own verifier, as ``duecall audit verify``).
Recovery after each fault: the time from the fault's end (process gone, database back) until
calls complete again at >= 80% of the rate of the 5 s before it; and when the last attempt that
was in flight at the fault completed (a killed worker's attempts are made again once
liveness finds it dead: within seconds).

Output: tables on stdout, JSON in ``bench-results/chaos-<timestamp>.json`` (logs of every
process beside it). Exit code 0 when every invariant holds, 1 when one does not, 2 on an error.

This module is the run and its command line; its parts are beside it: chaos_stack.py (the
database and the processes, from the shared harness package), chaos_load.py (the workload and
the submitter), chaos_faults.py (the faults), chaos_audit.py (the invariants, importable: tests
use it), chaos_recovery.py (recovery after each fault) and chaos_report.py (the tables). Over
300 lines on purpose: the run's steps, in order, read as one story (start, load and faults,
drain, audit, report).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from _harness import (  # puts the repository root on sys.path, for harness.* below
    HelpFormatter,
    check_env_items,
    machine_info,
    rounded,
)
from chaos_audit import (
    TERMINAL,
    audit_deliveries,
    audit_read_models,
    audit_store,
    checksums,
    invariants,
)
from chaos_faults import Fault, FaultInjector, plan_faults
from chaos_load import EXPECTED, Planned, Submitter, plan_workload
from chaos_recovery import per_second, recovery_of
from chaos_report import report
from chaos_stack import ChaosError, Database, Stack

from harness.processes import REPO_ROOT, console, duecall_command
from harness.recording_target import fetch_records
from projections.read_models import PROJECTIONS
from projections.runner import TRACKING_TABLE

SHUTDOWN_MARGIN_SECONDS = 3.0  # the process's own exit: pools closed, interpreter torn down


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
    stack.add_argument("--apis", type=int, default=1,
                       help="`duecall api` processes (the load goes round them; a submit that "
                       "fails is sent again to the next)")
    stack.add_argument("--read-model-procs", type=int, default=0,
                       help="`duecall projections run` processes (then the workers run with "
                       "--no-projections); 0: the workers keep the read models")
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
    faults.add_argument("--api-kill-at", type=float, default=-1.0,
                        help="when to SIGKILL an API process (the last; not replaced), as a "
                        "fraction of the submit phase (negative: never; needs --apis >= 2)")
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
    if args.calls < 1 or args.rate <= 0 or args.workers < 2 or args.apis < 1:
        parser.error("--calls >= 1, --rate > 0, --workers >= 2 and --apis >= 1 are required")
    if args.api_kill_at >= 0 and args.apis < 2:
        parser.error("--api-kill-at needs --apis >= 2 (the load goes on through the others)")
    if not 0 <= args.single_fraction <= 1:
        parser.error("--single-fraction must be within 0..1")
    if args.pg_restart_command and not args.database_url:
        parser.error("--pg-restart-command goes with --database-url")
    check_env_items(parser, args.env)
    return args


# -- after the run: what the target saw, the read models caught up and rebuilt --------------------


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



def rebuild_all(env: dict[str, str], log_dir: Path) -> None:
    for projection in PROJECTIONS:
        with (log_dir / f"rebuild-{projection.name}.log").open("wb") as log:
            done = subprocess.run(
                duecall_command("projections", "rebuild", projection.name),
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=600,
                check=False,
            )
        if done.returncode != 0:
            raise ChaosError(f"rebuilding {projection.name} failed (see {log.name})")



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
    console.print(f"api {', '.join(a.url for a in stack.apis)}, target {stack.target.url}, "
                  f"{len(stack.workers)} workers, {len(stack.readers)} read-model processes, "
                  f"database {ctx.result['database']['kind']}")
    ctx.planned = plan_workload(args, stack.target.url)
    ctx.faults = plan_faults(args, ctx.db.restartable)
    ctx.result["workload"] = {"calls": len(ctx.planned), "rate_per_s": args.rate,
                              "kinds": dict(Counter(c.kind for c in ctx.planned)),
                              "single_submits": sum(c.single for c in ctx.planned)}
    time.sleep(1.0)  # the workers connect
    for worker in stack.workers:
        if not worker.alive():
            raise ChaosError(f"{worker.name} exited:\n{worker.log_tail()}")
    submitter = Submitter([a.url for a in stack.apis], stack.key, ctx.planned, args.rate,
                          ctx.deadline)
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
    for reader in stack.readers:  # caught up; the rebuild below runs alone
        stack.terminate(reader, timeout=60)
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
    result["invariants"] = invariants(
        store, deliveries, models, refused=result["submit"]["refused"],
        slow_stops=len(slow_stops(result)),
        not_problem_json=result["submit"]["5xx_not_problem_json"])
    result["ok"] = all(item["ok"] for item in result["invariants"].values())


def slow_stops(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The graceful stops that outlasted the shutdown timeout (and the process's own exit)."""
    graceful = result["graceful_shutdown"]["under_load"] + result["graceful_shutdown"]["at_end"]
    limit = float(result["settings"].get("DUECALL_SHUTDOWN_TIMEOUT_SECONDS", "30"))
    return [g for g in graceful
            if g["exit_s"] is None or g["exit_s"] > limit + SHUTDOWN_MARGIN_SECONDS]


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
