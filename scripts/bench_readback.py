"""Reading the benchmark's results back (scripts/bench.py): the read model's statuses, the event
log's head and the read models' positions (queried directly), the target's records of what
arrived, and the projector-lag sampler."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import psycopg
from _harness import percentile, rounded
from bench_proc import cpu_seconds
from bench_stack import BenchError
from psycopg.rows import TupleRow

EVENTS_TABLE = "duecall_events"
HASHES_TABLE = "duecall_event_hashes"
TRACKING_TABLE = "duecall_projection_tracking"
READ_MODEL_TABLE = "duecall_rm_service_calls"
TERMINAL = ("succeeded", "failed", "cancelled")
BENCH_MARK = "/* bench */ "  # starts every statement of the bench's own connections


class CountingConnection(psycopg.Connection[TupleRow]):
    """A connection of the bench's own (autocommit: one transaction per statement) that counts
    its statements and marks each with ``/* bench */``, so that the bench's reads can be told
    apart from duecall's in pg_stat_database and pg_stat_statements."""

    statements = 0

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        self.statements += 1
        if isinstance(query, str):
            query = BENCH_MARK + query
        return super().execute(query, params, **kwargs)

    @property
    def backend_pid(self) -> int:
        return int(self.info.backend_pid)


def bench_connection(url: str) -> CountingConnection:
    return CountingConnection.connect(url, autocommit=True)


def status_counts(conn: psycopg.Connection[Any], tenant: str) -> dict[str, int]:
    rows = conn.execute(
        f"SELECT status, count(*) FROM {READ_MODEL_TABLE} WHERE tenant_id = %s GROUP BY status",
        (tenant,),
    ).fetchall()
    return {str(status): int(n) for status, n in rows}


def wait_terminal(conn: psycopg.Connection[Any], tenant: str, expected: int, interval: float,
                  timeout: float, check: Callable[[], None],
                  progress: Callable[[int], None] | None = None) -> tuple[float, dict[str, int]]:
    """Poll the read model until ``expected`` calls of the tenant are terminal there: every
    ``interval`` s near the end, less often while the end is far (at the rate so far), so that
    counting the tenant's rows takes little of the machine the benchmark measures."""
    began = time.monotonic()
    deadline = began + timeout
    while True:
        counts = status_counts(conn, tenant)
        done = sum(counts.get(s, 0) for s in TERMINAL)
        now = time.monotonic()
        if progress:
            progress(done)
        if done >= expected:
            return now, counts
        if now > deadline:
            raise BenchError(f"{tenant}: only {done} of {expected} calls terminal in the read "
                             f"model after {timeout:g} s ({counts})")
        check()
        rate = done / (now - began) if done else 0.0
        wait = min(1.0, (expected - done) / rate / 4) if rate else interval
        time.sleep(max(0.0, max(interval, wait) - (time.monotonic() - now)))


def settle(conn: psycopg.Connection[Any], timeout: float, check: Callable[[], None]) -> float:
    """Wait until every read model has folded the log as it is now (the previous phase's
    events), so that a phase measures itself, not the backlog of the one before; seconds
    waited."""
    began = time.monotonic()
    target = head(conn)
    while True:
        row = conn.execute(f"SELECT min(notification_id) FROM {TRACKING_TABLE}").fetchone()
        if row is None or row[0] is None or int(row[0]) >= target:
            return round(time.monotonic() - began, 3)
        if time.monotonic() - began > timeout:
            raise BenchError(f"read models still behind position {target} after {timeout:g} s")
        check()
        time.sleep(0.1)


def head(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(f"SELECT coalesce(max(notification_id), 0) FROM {EVENTS_TABLE}").fetchone()
    return int(row[0]) if row else 0


def fetch_arrivals(target_url: str, since: int) -> tuple[list[list[Any]], int]:
    with httpx.Client(timeout=60.0, trust_env=False) as client:
        data = client.get(f"{target_url}/__records", params={"since": since}).json()
    return data["records"], int(data["next"])


def target_count(target_url: str) -> int:
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        return int(client.get(f"{target_url}/__count").json()["count"])


class LagSampler(threading.Thread):
    """Every ``interval`` s: log head, each projection's position, and the age of its oldest
    unfolded event (the event after its position; 0 when caught up), counted from when that
    event was recorded (``recorded_at``, set by the events table's trigger in the inserting
    transaction) and, for comparison, from the event's own timestamp (set when the aggregate
    changed in Python: for a batch submit, before the API validated and saved the batch)."""

    def __init__(self, url: str, interval: float) -> None:
        super().__init__(name="lag-sampler", daemon=True)
        self.url = url
        self.interval = interval
        self.stopped = threading.Event()
        self.samples: list[dict[str, Any]] = []
        self.error: str | None = None
        self.statements = 0  # run on its connection (each one transaction)
        self.backend_cpu_s = 0.0  # its server process's CPU seconds, read before closing

    def run(self) -> None:
        try:
            with bench_connection(self.url) as conn:
                next_at = time.monotonic()
                while not self.stopped.is_set():
                    self.samples.append(self._sample(conn))
                    next_at += self.interval
                    self.stopped.wait(max(0.0, next_at - time.monotonic()))
                self.statements = conn.statements
                self.backend_cpu_s = cpu_seconds(conn.backend_pid) or 0.0
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"

    def _sample(self, conn: psycopg.Connection[Any]) -> dict[str, Any]:
        at = time.time()
        log_head = head(conn)
        positions = conn.execute(
            f"SELECT application_name, notification_id FROM {TRACKING_TABLE}"
        ).fetchall()
        lags = {}
        for name, position in positions:
            behind = max(0, log_head - int(position or 0))
            recorded, created = (self._ages(conn, int(position or 0) + 1, at) if behind
                                 else (0.0, 0.0))
            lags[str(name)] = (behind, recorded, created)
        return {"at": at, "head": log_head, "lags": lags}

    @staticmethod
    def _ages(conn: psycopg.Connection[Any], notification_id: int,
              now: float) -> tuple[float | None, float | None]:
        """Seconds since the event was recorded, and since its own timestamp."""
        row = conn.execute(
            f"SELECT extract(epoch FROM h.recorded_at), e.state FROM {EVENTS_TABLE} e "
            f"LEFT JOIN {HASHES_TABLE} h USING (originator_id, originator_version) "
            "WHERE e.notification_id = %s", (notification_id,)).fetchone()
        if not row:
            return None, None
        recorded = None if row[0] is None else max(0.0, now - float(row[0]))
        try:
            stamp = json.loads(bytes(row[1]))["timestamp"]
            text = stamp["_data_"] if isinstance(stamp, dict) else stamp
            return recorded, max(0.0, now - datetime.fromisoformat(text).timestamp())
        except (ValueError, KeyError, TypeError):
            return recorded, None

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)

    def summary(self) -> dict[str, Any]:
        per: dict[str, dict[str, Any]] = {}
        names = sorted({n for s in self.samples for n in s["lags"]})
        for name in names:
            events = [s["lags"][name][0] for s in self.samples if name in s["lags"]]
            ms = [s["lags"][name][1] * 1000 for s in self.samples
                  if name in s["lags"] and s["lags"][name][1] is not None]
            per[name] = {"p50_events": rounded(percentile(events, 50), 1),
                         "p99_events": rounded(percentile(events, 99), 1),
                         "max_events": max(events, default=None),
                         "p50_ms": rounded(percentile(ms, 50)),
                         "p99_ms": rounded(percentile(ms, 99)),
                         "max_ms": rounded(max(ms, default=None))}
        worst_events = [max((v[0] for v in s["lags"].values()), default=0) for s in self.samples]

        def worst_ms(index: int) -> list[float]:
            return [max(((v[index] or 0.0) for v in s["lags"].values()), default=0.0) * 1000
                    for s in self.samples]

        since_recorded, since_created = worst_ms(1), worst_ms(2)
        return {
            "samples": len(self.samples),
            "interval_s": self.interval,
            "worst_projection": {
                "p50_events": rounded(percentile(worst_events, 50), 1),
                "p99_events": rounded(percentile(worst_events, 99), 1),
                "p50_ms": rounded(percentile(since_recorded, 50)),
                "p99_ms": rounded(percentile(since_recorded, 99)),
                "max_ms": rounded(max(since_recorded, default=None)),
                "p50_ms_since_created": rounded(percentile(since_created, 50)),
                "p99_ms_since_created": rounded(percentile(since_created, 99)),
            },
            "projections": per,
            # each sample: seconds since the first, the log's head, and each projection's events
            # behind in the order of ``names`` (where a lag came from: which models, when)
            "series": {
                "names": names,
                "samples": [[round(s["at"] - self.samples[0]["at"], 2), s["head"],
                             [s["lags"].get(n, (None,))[0] for n in names]]
                            for s in self.samples],
            },
            "error": self.error,
        }
