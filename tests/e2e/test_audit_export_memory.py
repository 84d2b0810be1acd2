"""Exporting a tenant's events streams them: a `duecall api` process exporting 100,000 events
(tens of megabytes of NDJSON) grows its peak RSS by a few megabytes at most.

The events are real ones (the audit scenario, recorded through the applications) cloned in
SQL under new aggregate ids; the hash-chain trigger indexes every clone by tenant and
position as it would any event. The smaller size (16 MB of NDJSON) runs always; the 100k one
(53 MB) too unless DUECALL_SKIP_BIG_EXPORT is set. Both sizes use one database of the
module's: the bigger export clones only the events the smaller one did not.
"""

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import httpx
import psycopg
import pytest

from domain.ids import execution_id_for
from harness.api_keys import bearer
from harness.databases import fresh_database
from harness.duecall_process import DuecallProcess
from infrastructure.container import Container
from infrastructure.settings import Settings
from tests.support.audit_scenario import run_audit_scenario

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TENANT = "bulk"
MAX_GROWTH = 6 * 2**20  # bytes of peak RSS an export may add (16+ MB of NDJSON go through)
_CLONE = """
INSERT INTO duecall_events (originator_id, originator_version, topic, state)
SELECT md5(g::text || ':' || e.originator_id::text)::uuid, e.originator_version, e.topic, e.state
FROM generate_series(%s::int, %s::int) AS g, duecall_events e
WHERE e.originator_id = ANY(%s)
ORDER BY g, e.notification_id
"""
SCENARIO_EVENTS = 17  # events of one audit scenario: its call and three executions


@dataclass
class Bulk:
    """The module's database: TENANT, an API key of it, the recorded scenario's aggregates
    and how many clones of them are recorded so far."""

    url: str
    key: str
    template: list[UUID]
    clones: int = 0


@pytest.fixture(scope="module")
def bulk(server_url: str) -> Iterator[Bulk]:
    """A database of the module's own with TENANT and the audit scenario recorded for it."""
    with fresh_database(server_url, prefix="duecall_e2e") as url:
        container = Container.build(Settings(database_url=url, log_format="console"))
        try:
            key = container.tenants.create(TENANT).key
            call_id = run_audit_scenario(container, TENANT).call_id
        finally:
            container.close()
        yield Bulk(url, key, [call_id, *(execution_id_for(call_id, n) for n in (1, 2, 3))])


def _seed(bulk: Bulk, events: int) -> int:
    """Clone the scenario until TENANT has about ``events`` events; the tenant's event count."""
    wanted = events // SCENARIO_EVENTS
    with psycopg.connect(bulk.url, autocommit=True) as conn:
        if wanted > bulk.clones:
            conn.execute(_CLONE, (bulk.clones + 1, wanted, bulk.template))
            bulk.clones = wanted
            conn.execute("ANALYZE duecall_events; ANALYZE duecall_event_hashes")
        row = conn.execute("SELECT count(*) FROM duecall_event_hashes WHERE tenant_id = %s",
                           (TENANT,)).fetchone()
    assert row is not None
    return int(row[0])


def _peak_rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1])


def _export(server: DuecallProcess, key: str, **params: int) -> tuple[int, int]:
    """(lines, bytes) of the export of the tenant of ``key``, checked to be in log order."""
    lines = size = last = 0
    headers = bearer(key)
    with httpx.stream("GET", f"{server.url}/v1/audit/export", params=params, headers=headers,
                      timeout=120) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            position = json.loads(line)["position"]
            assert position > last
            last, lines, size = position, lines + 1, size + len(line) + 1
    return lines, size


@pytest.mark.parametrize(
    "events",
    [
        30_000,
        pytest.param(100_000, marks=pytest.mark.skipif(
            bool(os.environ.get("DUECALL_SKIP_BIG_EXPORT")), reason="DUECALL_SKIP_BIG_EXPORT")),
    ],
)
def test_export_streams_in_bounded_memory(bulk: Bulk, events: int) -> None:
    total, key = _seed(bulk, events), bulk.key
    assert total >= events
    with DuecallProcess(bulk.url, command="api") as server:
        warm_lines, _ = _export(server, key, after=max(0, total - 2_000))  # imports, pools, a page
        assert warm_lines > 0
        before = _peak_rss_kb(server.pid)
        lines, size = _export(server, key)
        growth_kb = _peak_rss_kb(server.pid) - before
    assert lines == total
    assert size > 300 * events  # what a buffered export would have held
    assert size > 2 * MAX_GROWTH
    assert growth_kb * 1024 < MAX_GROWTH, (growth_kb, size)
