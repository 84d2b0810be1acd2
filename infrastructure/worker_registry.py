"""Worker liveness in PostgreSQL: a row per live worker, renewed every second or so.

Every outbox message a worker claims is leased to it (``worker_id``, set from the claiming
connection: ``schema.LEASE_HOLDER``); a ``start`` row's replacement, its ``execute`` row,
inherits the lease (``duecall_record``). A worker whose row has not been renewed for
``dead_after`` seconds is dead: any live worker deletes its row and makes its leased messages
available again at once (or at their due time, as a graceful stop's hand-back does), with a
NOTIFY, so its attempts are made again within seconds instead of when their leases end. A live
worker keeps its leases however slow its targets are: it is never robbed.
"""

import os
import socket
from typing import Any
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool

from application.dispatch.liveness import LiveWorker, Reaped
from infrastructure.schema import OUTBOX_CHANNEL, OUTBOX_TABLE, WORKERS_TABLE

_BEAT = f"""
INSERT INTO {WORKERS_TABLE} (id, host, pid, in_flight) VALUES (%(id)s, %(host)s, %(pid)s, %(n)s)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), in_flight = excluded.in_flight
"""


def _ending_leases(gone: str) -> str:
    """One statement: the workers' rows that ``gone`` deletes (returning their ids; deleted
    once, by one caller only), their leased messages available again, the loops of the kinds
    freed woken."""
    return f"""
WITH gone AS ({gone} RETURNING id),
freed AS (
    UPDATE {OUTBOX_TABLE} AS o
    SET available_at = greatest(o.due_at, now()), worker_id = NULL
    FROM gone WHERE o.worker_id = gone.id AND o.claims > 0 AND o.available_at > now()
    RETURNING o.kind
)
SELECT (SELECT count(*) FROM gone) AS workers, (SELECT count(*) FROM freed) AS messages,
    (SELECT count(pg_notify('{OUTBOX_CHANNEL}', kind))
     FROM (SELECT DISTINCT kind FROM freed) AS k) AS woken
"""


_REAP = _ending_leases(
    f"DELETE FROM {WORKERS_TABLE} "
    "WHERE heartbeat_at < now() - make_interval(secs => %(dead_after)s)"
)
_LEAVE = _ending_leases(f"DELETE FROM {WORKERS_TABLE} WHERE id = %(id)s")
_LIVE = f"""
SELECT id, host, pid, started_at, heartbeat_at, in_flight,
    extract(epoch FROM now() - heartbeat_at)::double precision AS silent_seconds
FROM {WORKERS_TABLE} ORDER BY started_at, id
"""


class PostgresWorkerRegistry:
    def __init__(
        self, pool: ConnectionPool[psycopg.Connection[dict[str, Any]]], worker_id: UUID
    ) -> None:
        """``pool``: the outbox's (its connections claim for ``worker_id``)."""
        self._pool = pool
        self.worker_id = worker_id
        self._host = socket.gethostname()[:255]

    def beat(self, in_flight: int) -> None:
        params = {"id": self.worker_id, "host": self._host, "pid": os.getpid(), "n": in_flight}
        with self._pool.connection() as conn:
            conn.execute(_BEAT, params)

    def reap(self, dead_after: float) -> Reaped:
        return self._end_leases(_REAP, {"dead_after": dead_after})

    def leave(self) -> Reaped:
        return self._end_leases(_LEAVE, {"id": self.worker_id})

    def _end_leases(self, statement: str, params: dict[str, Any]) -> Reaped:
        with self._pool.connection() as conn:
            row = conn.execute(statement, params).fetchone()
        assert row is not None
        return Reaped(workers=row["workers"], messages=row["messages"])

    def live(self) -> list[LiveWorker]:
        with self._pool.connection() as conn:
            rows = conn.execute(_LIVE).fetchall()
        return [LiveWorker(**row) for row in rows]
