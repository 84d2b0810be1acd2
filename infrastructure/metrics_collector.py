"""Prometheus figures read from the database when scraped, so they are the same whichever
process serves them and however many workers there are: calls by status, attempts by outcome
and error kind, the outbox's depth and oldest due message, circuits by state, projector lag and
failures.
"""

from collections.abc import Iterator
from typing import Any, Protocol
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg_pool import ConnectionPool

from application.loading import load_many
from domain.circuit import Circuit
from infrastructure.schema import CIRCUITS_TABLE, OUTBOX_TABLE, WORKERS_TABLE
from projections.freshness import ProjectionStatus
from projections.service_calls import TABLE as CALLS_TABLE
from projections.statistics_schema import ERROR_KINDS, OUTCOMES, table

_OUTBOX = f"""
SELECT kind, count(*) AS depth,
       count(*) FILTER (WHERE available_at > now() AND claims > 0) AS leased,
       coalesce(extract(epoch FROM now() - min(due_at) FILTER (WHERE available_at <= now())), 0)
           AS oldest_due_age
FROM {OUTBOX_TABLE} GROUP BY kind ORDER BY kind
"""
_CALLS = f"SELECT status, count(*) AS n FROM {CALLS_TABLE} GROUP BY status ORDER BY status"
_ATTEMPTS = "SELECT {sums} FROM {table} WHERE level = 0".format(
    sums=", ".join(
        f"coalesce(sum({c}), 0) AS {c}"
        for c in (*OUTCOMES, *(f"errors_{kind}" for kind in ERROR_KINDS))
    ),
    table=table("day"),
)
_CIRCUITS = f"SELECT circuit_id FROM {CIRCUITS_TABLE} LIMIT 10000"
_WORKERS = f"""
SELECT count(*) AS live, coalesce(sum(in_flight), 0) AS in_flight,
       coalesce(extract(epoch FROM now() - min(heartbeat_at)), 0) AS silent
FROM {WORKERS_TABLE}
"""


class DatabaseMetrics(Collector):
    def __init__(
        self,
        pool: ConnectionPool[psycopg.Connection[dict[str, Any]]],
        app: Application[UUID],
        projection_status: "ProjectionStatusSource",
    ) -> None:
        self._pool = pool
        self._app = app
        self._projection_status = projection_status

    def collect(self) -> Iterator[Metric]:
        with self._pool.connection() as conn:
            outbox = conn.execute(_OUTBOX).fetchall()
            calls = conn.execute(_CALLS).fetchall()
            attempts = conn.execute(_ATTEMPTS).fetchone() or {}
            circuit_ids = [row["circuit_id"] for row in conn.execute(_CIRCUITS)]
            workers = conn.execute(_WORKERS).fetchone() or {}
        yield from _outbox_metrics(outbox)
        yield from _worker_metrics(workers)
        by_status = GaugeMetricFamily(
            "duecall_calls", "Calls by status (read model).", labels=["status"]
        )
        for row in calls:
            by_status.add_metric([row["status"]], row["n"])
        yield by_status
        yield CounterMetricFamily(
            "duecall_calls_submitted",
            "Calls submitted, all processes (read model: every call ever accepted).",
            value=sum(row["n"] for row in calls),
        )
        yield from _attempt_metrics(attempts)
        yield self._circuits(circuit_ids)
        yield from _lag_metrics(self._projection_status.status())

    def _circuits(self, ids: list[UUID]) -> Metric:
        states = dict.fromkeys(("closed", "open", "half_open"), 0)
        circuit: Circuit
        for circuit in load_many(self._app, ids).values():
            states[circuit.state] = states.get(circuit.state, 0) + 1
        family = GaugeMetricFamily(
            "duecall_circuits", "Circuit breakers by state.", labels=["state"]
        )
        for state, count in sorted(states.items()):
            family.add_metric([state], count)
        return family


class ProjectionStatusSource(Protocol):
    def status(self) -> list[ProjectionStatus]: ...


def _outbox_metrics(rows: list[dict[str, Any]]) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "duecall_outbox_messages", "Outbox messages waiting or leased, by kind.", labels=["kind"]
    )
    leased = GaugeMetricFamily(
        "duecall_outbox_leased", "Outbox messages leased by a worker now (in flight).",
        labels=["kind"],
    )
    oldest = GaugeMetricFamily(
        "duecall_outbox_oldest_due_age_seconds",
        "How long the oldest due, unclaimed message has been due, by kind.",
        labels=["kind"],
    )
    for row in rows:
        depth.add_metric([row["kind"]], row["depth"])
        leased.add_metric([row["kind"]], row["leased"])
        oldest.add_metric([row["kind"]], float(row["oldest_due_age"]))
    yield from (depth, leased, oldest)


def _worker_metrics(row: dict[str, Any]) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "duecall_workers", "Workers registered (beating, or not yet found dead).",
        value=row.get("live", 0),
    )
    yield GaugeMetricFamily(
        "duecall_workers_in_flight", "Attempts in flight over every worker, as they last said.",
        value=row.get("in_flight", 0),
    )
    yield GaugeMetricFamily(
        "duecall_workers_longest_silence_seconds",
        "Since the least recent heartbeat of a registered worker (dead past "
        "DUECALL_WORKER_DEAD_AFTER_SECONDS).",
        value=float(row.get("silent", 0)),
    )


def _attempt_metrics(sums: dict[str, Any]) -> Iterator[Metric]:
    finished = CounterMetricFamily(
        "duecall_attempts", "Attempts recorded, by outcome (all processes).", labels=["outcome"]
    )
    for outcome in OUTCOMES:
        finished.add_metric([outcome], float(sums.get(outcome, 0)))
    errors = CounterMetricFamily(
        "duecall_attempt_errors", "Failed attempts by error kind (all processes).",
        labels=["error_kind"],
    )
    for kind in ERROR_KINDS:
        errors.add_metric([kind], float(sums.get(f"errors_{kind}", 0)))
    yield from (finished, errors)


def _lag_metrics(statuses: list[ProjectionStatus]) -> Iterator[Metric]:
    events = GaugeMetricFamily(
        "duecall_projection_lag_events", "Events a read model is behind.", labels=["projection"]
    )
    seconds = GaugeMetricFamily(
        "duecall_projection_lag_seconds", "How far behind a read model is, in seconds.",
        labels=["projection"],
    )
    failures = GaugeMetricFamily(
        "duecall_projection_failures",
        "Events a read model could not fold and passed over (until it is rebuilt).",
        labels=["projection"],
    )
    for status in statuses:
        events.add_metric([status.name], status.lag_events)
        seconds.add_metric([status.name], status.lag_seconds)
        failures.add_metric([status.name], status.failures)
    yield from (events, seconds, failures)
