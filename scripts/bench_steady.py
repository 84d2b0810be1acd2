"""The benchmark's everyday-load phases (scripts/bench.py, issue 17): ``idle``,
``steady-<rate>`` and ``sequential``.

idle           nothing submitted for ``--idle-seconds``: what the stack costs while it waits
               (CPU, wake-ups, transactions and, with ``--statements``, queries per second).
steady-<rate>  single ``POST /v1/service-calls``, one call each (a ~``--body-bytes`` JSON body
               for the target), due now, at ``<rate>`` per second for ``--steady-seconds``,
               open loop: each send leaves at its time by the clock, in a task of its own,
               whatever the answers before it (``send_late_ms``: how late each left; sends held
               back because ``--steady-max-in-flight`` were unanswered are counted). The phase
               ends when every created call is terminal in the read model, so its CPU window
               holds all the work the calls caused (``drain_s`` after the last send). Lateness
               = arrival at the target - the call's ``due_at`` as the API answered it (also
               from when the client sent it); projector lag sampled as in throughput.
sequential     one client, one keep-alive connection (httpx, synchronous), ``--sequential-calls``
               single submits one after another, each sent when the one before was answered;
               calls due now, so the workers run meanwhile; rate and latency of the submits,
               then the phase waits (as steady does) until every call is terminal.

Both report CPU ms per call for every process and for PostgreSQL (``measure`` in
bench_phases.py), voluntary context switches (wake-ups) per call and transactions per call.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import psycopg
from _harness import percentile, rounded
from bench_load import (
    Paced,
    Sequential,
    call_payload,
    load_generator,
    post_open_loop,
    post_sequential,
    run_async,
)
from bench_readback import LagSampler, fetch_arrivals, target_count, wait_terminal
from bench_stack import BenchError, Stack, console

PhaseFn = Callable[[argparse.Namespace, Stack, psycopg.Connection[Any]], dict[str, Any]]
LATE_SEND_MS = 5.0  # a send this late against its schedule counts as the generator falling behind


def _quantiles(values: list[float], *points: tuple[str, float]) -> dict[str, float | None]:
    return {name: rounded(percentile(values, q)) for name, q in points}


QS = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0))


def _deliveries(stack: Stack, since: int, calls: list[tuple[str, float, float]]
                ) -> dict[str, Any]:
    """Match the target's records since ``since`` with the calls (by ``Idempotency-Key:
    <id>:1``): lateness from the due time and from the send, missing and duplicate ones."""
    records, _ = fetch_arrivals(stack.target_url, since)
    by_key = {f"{call_id}:1": (sent, due) for call_id, sent, due in calls}
    first: dict[str, float] = {}
    duplicates = 0
    for arrival, key, *_ in records:
        if key in by_key:
            if key in first:
                duplicates += 1
            else:
                first[key] = float(arrival)
    late = [(first[k] - by_key[k][1]) * 1000 for k in first]
    since_sent = [(first[k] - by_key[k][0]) * 1000 for k in first]
    return {
        "arrived": len(first),
        "missing": len(by_key) - len(first),
        "duplicates": duplicates,
        "early": sum(1 for v in late if v < 0),
        "lateness_ms": _quantiles(late, ("min", 0.0), ("p50", 50.0), ("p95", 95.0),
                                  ("p99", 99.0), ("max", 100.0)),
        "since_sent_ms": _quantiles(since_sent, ("p50", 50.0), ("p99", 99.0), ("max", 100.0)),
    }


def _finish(args: argparse.Namespace, stack: Stack, conn: psycopg.Connection[Any], tenant: str,
            out: Paced | Sequential, sampler: LagSampler, since: int) -> dict[str, Any]:
    """Wait until every created call is terminal in the read model; the common figures."""
    try:
        finished, counts = wait_terminal(conn, tenant, len(out.ids), args.sample_interval,
                                         args.timeout, stack.check_alive)
    finally:
        sampler.stop()
    if out.errors:
        console.print(f"[yellow]{len(out.errors)} submit errors, first: {out.errors[0]}[/]")
    return {
        "created": len(out.ids),
        "errors": len(out.errors),
        "first_errors": out.errors[:5],
        "statuses": counts,
        "drain_s": round(finished - out.finished, 3),
        "submit_latency_ms": _quantiles(out.latencies_ms, *QS),
        **_deliveries(stack, since, out.calls),
        "projector_lag": sampler.summary(),
        # for measure(): the lag sampler's own statements and its server process's CPU
        "bench_statements": sampler.statements,
        "bench_backend_cpu_s": round(sampler.backend_cpu_s, 3),
    }


def phase_idle(args: argparse.Namespace, stack: Stack,
               conn: psycopg.Connection[Any]) -> dict[str, Any]:
    deadline = time.monotonic() + args.idle_seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        stack.check_alive()
    return {"seconds": args.idle_seconds}


def steady_phase(rate: float) -> PhaseFn:
    def phase_steady(args: argparse.Namespace, stack: Stack,
                     conn: psycopg.Connection[Any]) -> dict[str, Any]:
        tenant = f"bench-steady-{rate:g}"
        api_key = stack.key_for(tenant)  # now, not inside the timed part
        count = max(1, round(rate * args.steady_seconds))
        since = target_count(stack.target_url)
        sampler = LagSampler(stack.db.url, args.sample_interval)

        def make(index: int) -> dict[str, Any]:
            return call_payload(stack.target_url, index, body_bytes=args.body_bytes)

        async def go() -> Paced:
            async with load_generator(args.client, args.steady_max_in_flight) as client:
                return await post_open_loop(client, stack.api_urls, api_key, rate, count, make,
                                            args.steady_max_in_flight)

        sampler.start()
        try:
            out = run_async(go())
        except BaseException:
            sampler.stop()
            raise
        seconds = out.finished - out.started
        result = {
            "rate": rate,
            "calls": count,
            "planned_s": round(count / rate, 3),
            "send_s": round(seconds, 3),
            "achieved_per_s": round(count / max(seconds, 1e-9), 1),
            "send_late_ms": _quantiles(out.send_late_ms, *QS),
            "sends_late": sum(1 for v in out.send_late_ms if v > LATE_SEND_MS),
            "sends_late_threshold_ms": LATE_SEND_MS,
            "waited_for_slot": out.waited_for_slot,
            "peak_in_flight": out.peak_in_flight,
            "body_bytes": args.body_bytes,
        }
        result.update(_finish(args, stack, conn, tenant, out, sampler, since))
        if result["sends_late"] > count // 100:
            console.print(f"[yellow]steady {rate:g}/s: the load generator fell behind: "
                          f"{result['sends_late']} of {count} sends over "
                          f"{LATE_SEND_MS:g} ms late[/]")
        return result

    return phase_steady


def phase_sequential(args: argparse.Namespace, stack: Stack,
                     conn: psycopg.Connection[Any]) -> dict[str, Any]:
    tenant = "bench-sequential"
    api_key = stack.key_for(tenant)
    count = args.sequential_calls
    since = target_count(stack.target_url)
    sampler = LagSampler(stack.db.url, args.sample_interval)

    def make(index: int) -> dict[str, Any]:
        return call_payload(stack.target_url, index, body_bytes=args.body_bytes)

    sampler.start()
    try:
        out = post_sequential(stack.api_urls[0], api_key, count, make)
    except BaseException:
        sampler.stop()
        raise
    if out.connections_opened != 1:
        console.print(f"[yellow]sequential: {out.connections_opened} connections opened "
                      "(the API did not keep the connection alive)[/]")
    if not out.latencies_ms:
        sampler.stop()
        raise BenchError(f"sequential: no submit succeeded: {out.errors[:3]}")
    result = {
        "calls": count + 1,  # the untimed first request created a call too
        "timed_submits": count,
        "seconds": round(out.seconds, 3),
        "submits_per_s": round(len(out.latencies_ms) / out.seconds, 1),
        "latency_ms": _quantiles(out.latencies_ms, ("min", 0.0), ("p50", 50.0), ("p90", 90.0),
                                 ("p99", 99.0), ("max", 100.0)),
        "connections_opened": out.connections_opened,
        "body_bytes": args.body_bytes,
    }
    result.update(_finish(args, stack, conn, tenant, out, sampler, since))
    return result
