"""The benchmark's phases (scripts/bench.py): the warm-up, then throughput, submit, batch and
precision (what each measures: bench.py's docstring), and steady-<rate> and sequential
(bench_steady.py), each timed, with every process's CPU seconds and wake-ups during it, the
PostgreSQL server's CPU by kind of process, and the database's transactions.

Over 300 lines on purpose: the phases share one measuring frame (CPU, wake-ups, transactions
before and after), and each is short.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
from _harness import percentile, rounded
from bench_load import (
    Submitted,
    call_payload,
    load_generator,
    post_singles,
    run_async,
    submit_batches,
)
from bench_proc import MACHINE, PostgresProcesses, switches_between, voluntary_switches
from bench_readback import (
    READ_MODEL_TABLE,
    LagSampler,
    fetch_arrivals,
    head,
    target_count,
    wait_terminal,
)
from bench_stack import BenchError, Stack, console
from bench_statements import Statements
from bench_steady import phase_idle, phase_sequential, steady_phase

FAR_FUTURE_SECONDS = 86_400.0


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


def _transactions(conn: psycopg.Connection[Any] | None) -> int | None:
    """Commits + rollbacks of the bench's database so far (pg_stat_database; each backend
    reports its counts within about a second when busy, later when it goes idle)."""
    if conn is None:
        return None
    row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                       "WHERE datname = current_database()").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def measure(stack: Stack, run: Callable[[], dict[str, Any]],
            conn: psycopg.Connection[Any] | None = None,
            statements: Statements | None = None) -> dict[str, Any]:
    """Run a phase; add its wall time, each process's CPU seconds and voluntary context
    switches during it, the PostgreSQL server's CPU by kind of process (``postgres_cpu_s``;
    the bench's own connections apart), the database's transactions less the bench's own, and
    (with ``statements``) pg_stat_statements over the phase."""
    bench_pids = {int(conn.info.backend_pid)} if conn is not None else set()
    bench_before = getattr(conn, "statements", 0)
    xacts_before = _transactions(conn)
    if statements is not None:
        statements.reset()
    switches_before = {p.name: voluntary_switches(p.pid) for p in stack.processes.all}
    pg_before = stack.postgres.snapshot()
    before, began = stack.cpu(), time.monotonic()
    result = run()
    wall = time.monotonic() - began
    after = stack.cpu()
    pg_after = stack.postgres.snapshot()
    switches = {proc.name: switches_between(switches_before.get(proc.name),
                                            voluntary_switches(proc.pid))
                for proc in stack.processes.all}
    if statements is not None:
        result["statements"] = statements.read()
    xacts_after = _transactions(conn)
    cpu: dict[str, float | None] = {}
    for name, start in before.items():
        end = after.get(name)
        cpu[name] = None if start is None or end is None else round(end - start, 3)
    busy = cpu.pop(MACHINE)
    ours = sum(v for v in cpu.values() if v is not None)
    stack.check_alive()
    postgres = PostgresProcesses.breakdown(pg_before, pg_after, stack.db.name, bench_pids)
    sampler_cpu = float(result.pop("bench_backend_cpu_s", 0.0) or 0.0)
    if postgres is not None and sampler_cpu:  # the lag sampler's server process has exited
        postgres["exited"] = round(postgres["exited"] - sampler_cpu, 3)
        postgres["bench connections"] = round(postgres["bench connections"] + sampler_cpu, 3)
        postgres["duecall"] = round(postgres["duecall"] - sampler_cpu, 3)
    bench_statements = (getattr(conn, "statements", 0) - bench_before
                        + int(result.pop("bench_statements", 0) or 0))
    transactions = None
    if xacts_before is not None and xacts_after is not None:
        # less the bench's own (autocommit: one each) and the reading of the count before
        transactions = {"all": xacts_after - xacts_before, "bench": bench_statements + 1,
                        "duecall": xacts_after - xacts_before - bench_statements - 1}
    return {**result, "wall_s": round(wall, 3), "cpu_s": cpu,
            "machine_busy_cpu_s": busy,
            "other_cpu_s": None if busy is None else round(max(0.0, busy - ours), 3),
            "postgres_cpu_s": postgres, "voluntary_switches": switches,
            "transactions": transactions}


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


PhaseFn = Callable[[argparse.Namespace, Stack, psycopg.Connection[Any]], dict[str, Any]]

PHASES: dict[str, PhaseFn] = {
    "throughput": phase_throughput,
    "submit": phase_submit,
    "batch": phase_batch,
    "precision": phase_precision,
    "idle": phase_idle,
    "sequential": phase_sequential,
}
STEADY = "steady-"  # steady-<rate>: bench.py expands "steady" to one per --steady-rates


def phase_of(name: str) -> PhaseFn:
    """The phase called ``name``: one of PHASES, or steady-<calls per second>."""
    if name.startswith(STEADY):
        return steady_phase(float(name.removeprefix(STEADY)))
    return PHASES[name]
