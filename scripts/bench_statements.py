"""pg_stat_statements over a phase (scripts/bench.py ``--statements``): the queries the phase's
database ran, by total execution time, with calls and time per call of the workload.

Needs a server with ``shared_preload_libraries = 'pg_stat_statements'`` (the embedded pgserver
ships no such module: use ``DATABASE_URL`` with a server that has it; see docs/performance.md
for a private PostgreSQL 15 cluster made for it). The bench creates the extension in its
database, resets the counters (of the whole server) when a phase starts and reads its
database's rows when the phase ends. Statements of the bench's own connections start with
``/* bench */`` and are counted apart. ``track = all`` (the server's setting) also counts the
statements run inside functions and triggers (the hash chain's), which then count twice in the
totals (once in the statement that fired them): the totals here are of top-level statements
(``toplevel``, PostgreSQL 14+).
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from bench_readback import BENCH_MARK

TOP = 100
_SPACE = re.compile(r"\s+")


def _kind(query: str) -> str:
    text = query.lstrip().upper()
    if text.startswith(("BEGIN", "START TRANSACTION")):
        return "begin"
    if text.startswith(("COMMIT", "END")):
        return "commit"
    if text.startswith(("ROLLBACK", "ABORT")):
        return "rollback"
    if text.startswith("NOTIFY") or "PG_NOTIFY(" in text:
        return "notify"
    if text.startswith("LISTEN"):
        return "listen"
    return "statement"


class Statements:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.available = False
        self.why_not = ""
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT 1 FROM pg_stat_statements LIMIT 1").fetchall()
            self.available = True
        except psycopg.Error as error:
            self.why_not = str(error).strip().splitlines()[0]

    def reset(self) -> None:
        if self.available:
            self.conn.execute("SELECT pg_stat_statements_reset()")

    def read(self) -> dict[str, Any]:
        if not self.available:
            return {"available": False, "why_not": self.why_not}
        rows = self.conn.execute(
            "SELECT s.query, s.calls, s.total_exec_time, s.rows, s.toplevel, "
            "s.total_plan_time, s.plans FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database()"
        ).fetchall()
        queries: list[dict[str, Any]] = []
        totals = {"calls": 0, "exec_ms": 0.0, "bench_calls": 0, "bench_exec_ms": 0.0,
                  "nested_calls": 0, "nested_exec_ms": 0.0}
        kinds: dict[str, int] = {}
        for query, calls, exec_ms, nrows, toplevel, plan_ms, plans in rows:
            text = _SPACE.sub(" ", str(query)).strip()
            bench = text.startswith(BENCH_MARK.strip()) or "pg_stat_statements" in text
            if bench:
                totals["bench_calls"] += int(calls)
                totals["bench_exec_ms"] += float(exec_ms)
                continue
            if not toplevel:
                totals["nested_calls"] += int(calls)
                totals["nested_exec_ms"] += float(exec_ms)
            else:
                totals["calls"] += int(calls)
                totals["exec_ms"] += float(exec_ms)
                kinds[_kind(text)] = kinds.get(_kind(text), 0) + int(calls)
            queries.append({"query": text[:300], "calls": int(calls), "toplevel": bool(toplevel),
                            "exec_ms": round(float(exec_ms), 2),
                            "plan_ms": round(float(plan_ms or 0.0), 2),
                            "plans": int(plans or 0), "rows": int(nrows)})
        queries.sort(key=lambda q: -q["exec_ms"])
        return {"available": True, "totals": {k: round(v, 2) if isinstance(v, float) else v
                                              for k, v in totals.items()},
                "top-level calls by kind": kinds, "queries": queries[:TOP],
                "distinct": len(queries)}


def per_call(statements: dict[str, Any], calls: int) -> dict[str, Any]:
    """Calls and ms per workload call, for the summary."""
    if not statements.get("available") or not calls:
        return {}
    totals = statements["totals"]
    kinds = statements["top-level calls by kind"]
    return {
        "statements": round(totals["calls"] / calls, 2),
        "exec_ms": round(totals["exec_ms"] / calls, 3),
        "commits": round(kinds.get("commit", 0) / calls, 2),
        "notifies": round(kinds.get("notify", 0) / calls, 2),
    }
