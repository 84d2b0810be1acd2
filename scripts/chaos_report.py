"""The chaos run's report: its result (the JSON that scripts/chaos.py writes) as tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


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
                      "flight that ended > 10 s later (left to their leases)")
        for fault in result["faults"]:
            detail = fault["detail"]
            shown = {"sigterm": f"{detail.get('worker')} exited in {detail.get('exit_s')} s",
                     "sigkill": str(detail.get("worker", "")),
                     "pg_restart": f"down {detail.get('total_s')} s",
                     "api_kill": f"{detail.get('api')}; left {detail.get('left')}",
                     }.get(fault["kind"], "")
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
