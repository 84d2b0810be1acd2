"""The benchmark's report (scripts/bench.py): the figures and each process's CPU and RSS for the
JSON, a line per phase while it runs, the tables on stdout and the notes on what may have
disturbed the figures."""

from __future__ import annotations

import os
from typing import Any

from bench_proc import status_kb
from bench_stack import Stack
from rich.console import Console
from rich.table import Table

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
