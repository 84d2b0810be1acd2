"""The benchmark's report (scripts/bench.py): the figures and each process's CPU and RSS for the
JSON, a line per phase while it runs, the tables on stdout and the notes on what may have
disturbed the figures.

Over 300 lines on purpose: every printed table and every JSON figure is made here, so that
what the report says and what it measured are read side by side.
"""

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
    # issue 17
    "steady_100_cpu_ms_per_call": ("<=", 2.5, "≤ 2.5 ms"),
    "steady_100_lateness_p50_ms": ("<=", 3, "p50 ≤ 3 ms"),
    "steady_100_lateness_p99_ms": ("<=", 10, "p99 ≤ 10 ms"),
    "sequential_submits_per_s": (">=", 800, "≥ 800/s"),
    "sequential_p50_ms": ("<=", 1.2, "p50 ≤ 1.2 ms"),
}
DUECALL_ROLES = ("api-", "worker-", "projections-")


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
        **_everyday_figures(phases),
    }


def _everyday_figures(phases: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Issue 17's figures, for the steady and sequential phases that ran (only those: a run
    without them has no such keys)."""
    out: dict[str, float | None] = {}
    for name, phase in phases.items():
        if name.startswith("steady-"):
            key = f"steady_{name.removeprefix('steady-')}"
            out[f"{key}_cpu_ms_per_call"] = phase.get("cpu_ms_per_call", {}).get(
                "duecall and postgres")
            out[f"{key}_lateness_p50_ms"] = phase["lateness_ms"]["p50"]
            out[f"{key}_lateness_p99_ms"] = phase["lateness_ms"]["p99"]
            out[f"{key}_projector_lag_p99_ms"] = phase["projector_lag"]["worst_projection"][
                "p99_ms"]
    seq = phases.get("sequential")
    if seq:
        out["sequential_submits_per_s"] = seq["submits_per_s"]
        out["sequential_p50_ms"] = seq["latency_ms"]["p50"]
        out["sequential_p99_ms"] = seq["latency_ms"]["p99"]
        out["sequential_cpu_ms_per_call"] = seq.get("cpu_ms_per_call", {}).get(
            "duecall and postgres")
    return out


def idle_figures(outcome: dict[str, Any]) -> None:
    """Per second of the idle phase: CPU ms of every process and of PostgreSQL, wake-ups and
    transactions (and statements, with --statements)."""
    seconds = outcome["wall_s"]
    per = {name: (None if v is None else round(v * 1000 / seconds, 2))
           for name, v in outcome["cpu_s"].items()}
    if outcome.get("postgres_cpu_s"):
        per["postgres"] = round(outcome["postgres_cpu_s"]["duecall"] * 1000 / seconds, 2)
    outcome["cpu_ms_per_s"] = per
    outcome["wakeups_per_s"] = {name: (None if v is None else round(v / seconds, 1))
                                for name, v in outcome.get("voluntary_switches", {}).items()}
    if outcome.get("transactions"):
        outcome["transactions_per_s"] = round(outcome["transactions"]["duecall"] / seconds, 1)
    totals = outcome.get("statements", {}).get("totals")
    if totals:
        outcome["statements_per_s"] = round(totals["calls"] / seconds, 1)


def per_call_figures(outcome: dict[str, Any], calls: int) -> None:
    """Per call of a phase (steady, sequential): CPU ms of every process, of PostgreSQL (the
    part duecall caused) and of duecall's processes and PostgreSQL together; voluntary context
    switches (wake-ups) per call of every process; transactions per call."""
    if not calls:
        return
    cpu = outcome["cpu_s"]
    per = {name: (None if v is None else round(v * 1000 / calls, 3)) for name, v in cpu.items()}
    postgres = outcome.get("postgres_cpu_s")
    if postgres:
        per["postgres"] = round(postgres["duecall"] * 1000 / calls, 3)
        per["postgres (whole server)"] = round(postgres["total"] * 1000 / calls, 3)
    ours = [v for name, v in per.items() if name.startswith(DUECALL_ROLES) and v is not None]
    per["duecall processes"] = round(sum(ours), 3)
    if per.get("postgres") is not None:
        per["duecall and postgres"] = round(sum(ours) + (per["postgres"] or 0.0), 3)
    outcome["cpu_ms_per_call"] = per
    outcome["cpu_utilisation"] = {name: (None if v is None else round(v / outcome["wall_s"], 2))
                                  for name, v in cpu.items()}
    outcome["wakeups_per_call"] = {
        name: (None if v is None else round(v / calls, 2))
        for name, v in outcome.get("voluntary_switches", {}).items()}
    if outcome.get("transactions"):
        outcome["transactions_per_call"] = round(outcome["transactions"]["duecall"] / calls, 2)


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
    if name == "idle":
        per = outcome.get("cpu_ms_per_s", {})
        ours = {k: v for k, v in per.items() if k.startswith(DUECALL_ROLES) or k == "postgres"}
        wakeups = {k: v for k, v in outcome.get("wakeups_per_s", {}).items()
                   if k.startswith(DUECALL_ROLES)}
        return (f"CPU ms per second {ours}; wake-ups per second {wakeups}; transactions per "
                f"second {outcome.get('transactions_per_s')}")
    if name.startswith("steady-") or name == "sequential":
        per = outcome.get("cpu_ms_per_call", {})
        late, lag = outcome["lateness_ms"], outcome["projector_lag"]["worst_projection"]
        head = (f"{outcome['achieved_per_s']:,}/s sent ({outcome['sends_late']} sends late)"
                if name != "sequential" else
                f"{outcome['submits_per_s']:,} submits/s, p50 {outcome['latency_ms']['p50']} / "
                f"p99 {outcome['latency_ms']['p99']} ms")
        return (f"{head}; CPU {per.get('duecall and postgres')} ms/call (postgres "
                f"{per.get('postgres')}); late p50 {late['p50']} / p99 {late['p99']} ms; lag "
                f"p99 {lag['p99_ms']} ms; statuses {outcome['statuses']}")
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
    phases = result["phases"]
    if phases.keys() & {"throughput", "submit", "batch", "precision"} or not phases:
        _print_issue_7(out, result)

    _print_everyday(out, result)

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


def _print_issue_7(out: Console, result: dict[str, Any]) -> None:
    """Issue 7's table and the processes' CPU during the throughput run."""
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


def _print_everyday(out: Console, result: dict[str, Any]) -> None:
    """Issue 17's table: per steady rate and for sequential submits, CPU ms per call of each
    duecall process and PostgreSQL, lateness, lag, wake-ups and transactions per call."""
    phases = {n: p for n, p in result["phases"].items()
              if n.startswith("steady-") or n == "sequential"}
    if not phases:
        return
    procs = [n for n in result.get("processes", {}) if n.startswith(DUECALL_ROLES)]
    table = Table(title="everyday load (issue 17): CPU ms per call of each process, lateness "
                  "and projector lag in ms, wake-ups (voluntary context switches) and "
                  "transactions per call", title_justify="left")
    for column in ("phase", "calls/s", *procs, "postgres", "duecall+pg", "late p50/p99",
                   "lag p50/p99", "wake-ups", "xacts"):
        table.add_column(column, justify="left" if column == "phase" else "right",
                         no_wrap=True)
    for name, phase in phases.items():
        per = phase.get("cpu_ms_per_call", {})
        wake = phase.get("wakeups_per_call", {})
        rate = (phase["achieved_per_s"] if name != "sequential" else phase["submits_per_s"])
        late, lag = phase["lateness_ms"], phase["projector_lag"]["worst_projection"]
        wakeups = sum(v for n, v in wake.items() if n.startswith(DUECALL_ROLES) and v)
        table.add_row(name, fmt(rate), *(fmt(per.get(p), "", 2) for p in procs),
                      fmt(per.get("postgres"), "", 2), fmt(per.get("duecall and postgres"), "", 2),
                      f"{fmt(late['p50'])}/{fmt(late['p99'])}",
                      f"{fmt(lag['p50_ms'], '', 0)}/{fmt(lag['p99_ms'], '', 0)}",
                      fmt(wakeups, "", 1), fmt(phase.get("transactions_per_call"), "", 2))
    wide = out if out.is_terminal else Console(highlight=False, width=200)
    wide.print(table)
    seq = phases.get("sequential")
    if seq:
        lat = seq["latency_ms"]
        out.print(f"sequential: one client, one keep-alive connection "
                  f"({seq['connections_opened']} opened): {fmt(seq['submits_per_s'])} submits/s, "
                  f"p50 {fmt(lat['p50'], ' ms', 2)}, p99 {fmt(lat['p99'], ' ms', 2)} "
                  f"(targets ≥ 800/s, p50 ≤ 1.2 ms: "
                  f"{verdict('sequential_submits_per_s', seq['submits_per_s'])}, "
                  f"{verdict('sequential_p50_ms', lat['p50'])})")
    if "steady-100" in result["phases"]:
        f = result["figures"]
        cpu, p50, p99 = (f.get(f"steady_100_{k}") for k in
                         ("cpu_ms_per_call", "lateness_p50_ms", "lateness_p99_ms"))
        out.print(f"steady 100/s: {fmt(cpu, ' ms', 2)} CPU per call (target ≤ 2.5 ms: "
                  f"{verdict('steady_100_cpu_ms_per_call', cpu)}), lateness p50 "
                  f"{fmt(p50, ' ms')} ({verdict('steady_100_lateness_p50_ms', p50)}), p99 "
                  f"{fmt(p99, ' ms')} ({verdict('steady_100_lateness_p99_ms', p99)})")


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
    notes += _everyday_anomalies(phases)
    p = phases.get("precision", {})
    if p.get("early"):
        notes.append(f"precision: {p['early']} calls arrived BEFORE their due time")
    if p.get("duplicates"):
        notes.append(f"precision: {p['duplicates']} duplicate deliveries")
    if p and p.get("submitted_before_first_due_s", 1) < 0:
        notes.append("precision: the submit finished after the first due time")
    return notes


def _everyday_anomalies(phases: dict[str, dict[str, Any]]) -> list[str]:
    notes = []
    for name, phase in phases.items():
        if not (name.startswith("steady-") or name == "sequential"):
            continue
        for key in ("errors", "missing", "duplicates", "early"):
            if phase.get(key):
                notes.append(f"{name}: {phase[key]} {key}")
        if phase.get("sends_late"):
            notes.append(f"{name}: the load generator sent {phase['sends_late']} calls more than "
                         f"{phase['sends_late_threshold_ms']:g} ms behind schedule "
                         f"(send lateness p99 {phase['send_late_ms']['p99']} ms)")
        pg = phase.get("postgres_cpu_s") or {}
        if pg.get("other databases", 0) > 0.05 * max(pg.get("total", 0), 1e-9):
            notes.append(f"{name}: other databases' backends used {pg['other databases']} CPU s "
                         "of the server (not counted as duecall's)")
    return notes
