#!/usr/bin/env python
"""Benchmark the read models: seed executions, rebuild the projections, time the queries.

    .venv/bin/python scripts/bench_queries.py --count 1000000      # DATABASE_URL or embedded

Seeding uses the domain and ``Application.save`` directly (the events the workers record:
Submitted, Scheduled, Started, AttemptFailed, Succeeded/Failed and the executions' events),
~150 calls per transaction, due one after the other over the last 30 days (as a live log
would be). Then every
projection is rebuilt from position 0 (catch-up rate, events/s) and each query is run
``--repeat`` times through the HTTP app (FastAPI TestClient, no network) for p50/p99, with an
API key of the tenant made through the admin API (a random admin key per run) whose rate limit
is the highest the API allows, so that it never shapes a figure.
"""

import argparse
import functools
import random
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from application.clock import utcnow
from domain.execution import Execution
from domain.ids import new_service_call_id
from domain.outcome import AttemptResult, ErrorKind
from domain.request import RequestSpec
from domain.retry_policy import Jitter, RetryPolicy
from domain.service_call import ServiceCall
from infrastructure.container import Container
from infrastructure.settings import Settings
from interfaces.api.app import create_app

TENANT = "bench"
NAMES = ("invoice.paid", "user.created", "order.shipped", "reminder", "partner.sync")
HOSTS = ("hooks.alpha.example", "api.beta.example", "cb.gamma.example")
POLICY = RetryPolicy(max_attempts=3, initial_backoff_seconds=2, jitter=Jitter.NONE)
console = Console()


def _answer(rng: random.Random) -> AttemptResult:
    duration = rng.lognormvariate(4.0, 0.8)
    roll = rng.random()
    if roll < 0.08:
        return AttemptResult(duration_ms=duration, status_code=503)
    if roll < 0.10:
        return AttemptResult(duration_ms=10_000.0, error_kind=ErrorKind.TIMEOUT)
    if roll < 0.12:
        return AttemptResult(duration_ms=duration, status_code=404)
    return AttemptResult(duration_ms=duration, status_code=200)


def _call(rng: random.Random, now: datetime) -> list[Any]:
    """One call through all its attempts, as the workers would record it."""
    call = ServiceCall.submit(
        id=new_service_call_id(), tenant_id=TENANT, name=rng.choice(NAMES),
        request=RequestSpec("POST", f"https://{rng.choice(HOSTS)}/hook"), due_at=now,
        tags=[rng.choice(("blue", "green"))], retry_policy=POLICY,
    )
    aggregates: list[Any] = [call]
    while not call.is_terminal:
        now = max(now, call.due_at)
        execution_id = call.start(call.attempt, now)
        assert execution_id is not None
        execution = Execution.begin(id=execution_id, tenant_id=TENANT, service_call_id=call.id,
                                    attempt=call.attempt, request=call.request, now=now)
        result = _answer(rng)
        now += timedelta(milliseconds=result.duration_ms)
        outcome = execution.finish(result, now)
        assert outcome is not None
        call.record_outcome(outcome, now, 1.0)
        aggregates.append(execution)
    return aggregates


def seed(container: Container, count: int, days: int) -> None:
    rng = random.Random(42)
    start, step = utcnow() - timedelta(days=days), days * 86400 / count
    with Progress(console=console) as progress:
        task = progress.add_task("seeding executions", total=count)
        done = 0
        while done < count:
            batch: list[Any] = []
            while len(batch) < 150 * 3 and done < count:
                due = start + timedelta(seconds=done * step)  # the log grows in time order
                aggregates = _call(rng, due)
                batch += aggregates
                done += len(aggregates) - 1
            container.service_calls.save(*batch)
            progress.update(task, completed=done)


def catch_up_rates(container: Container, names: list[str]) -> dict[str, float]:
    events = container.read_models.event_count()
    rates = {}
    for name in names:
        with Progress(console=console) as progress:
            task = progress.add_task(f"rebuilding {name}", total=events)
            started = time.perf_counter()
            container.read_models.rebuild(name, functools.partial(progress.advance, task))
            rates[name] = events / (time.perf_counter() - started)
    return rates


def latencies(run: Callable[[], None], repeat: int) -> tuple[float, float]:
    run()  # warm up
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.99) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="executions to seed")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=200, help="runs of each query")
    parser.add_argument("--no-seed", action="store_true", help="reuse the seeded database")
    parser.add_argument("--rebuild", nargs="+", metavar="NAME",
                        help="read models to rebuild (default: all; the queries need "
                             "service_calls, executions and statistics)")
    args = parser.parse_args()
    admin_key = secrets.token_urlsafe(32)
    settings = Settings(log_level="WARNING", log_format="console", admin_key=admin_key)
    with TestClient(create_app(settings)) as client:
        container: Container = client.app.state.container  # type: ignore[attr-defined]
        client.headers["Authorization"] = f"Bearer {_api_key(client, admin_key)}"
        seeding = time.perf_counter()
        if not args.no_seed:
            seed(container, args.count, args.days)
        seeding = time.perf_counter() - seeding
        rates = catch_up_rates(container, args.rebuild or list(container.read_models.runners))
        now = utcnow()
        month = {"from": (now - timedelta(days=args.days)).isoformat(), "to": now.isoformat()}
        queries: dict[str, tuple[str, dict[str, Any]]] = {
            "list: failed calls of one name, page of 50": (
                "/v1/service-calls", {"status": "failed", "name": NAMES[0], "limit": 50}),
            f"stats: {args.days} days by hour, by host": (
                "/v1/stats", {**month, "bucket": "hour", "group_by": "host"}),
            "latest execution per name": ("/v1/executions/latest", {}),
        }
        table = Table("measure", "value")
        table.add_row("executions in read model", str(_executions(client)))
        table.add_row("events in log", str(container.read_models.event_count()))
        if not args.no_seed:
            table.add_row("seeding", f"{seeding:,.0f} s")
        for name, rate in rates.items():
            table.add_row(f"catch-up {name}", f"{rate:,.0f} events/s")
        for label, (path, params) in queries.items():
            p50, p99 = latencies(functools.partial(_get, client, path, params), args.repeat)
            table.add_row(label, f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        console.print(table)


def _api_key(client: TestClient, admin_key: str) -> str:
    """A new API key of TENANT (created if new), limited to 1,000,000 requests a second."""
    limits = {"rate_per_second": 1_000_000.0, "burst": 1_000_000}
    admin = {"Authorization": f"Bearer {admin_key}"}
    response = client.post("/v1/admin/tenants", json={"name": TENANT, **limits}, headers=admin)
    if response.status_code == 409:  # --no-seed: the tenant is there from an earlier run
        response = client.post(f"/v1/admin/tenants/{TENANT}/keys", json=limits, headers=admin)
    response.raise_for_status()
    key: str = response.json()["key"]
    return key


def _get(client: TestClient, path: str, params: dict[str, Any]) -> None:
    response = client.get(path, params=params)
    response.raise_for_status()


def _executions(client: TestClient) -> int:
    response = client.get("/v1/executions", params={"limit": 1, "include_total": "true"})
    return int(response.json()["total"])


if __name__ == "__main__":
    main()
