"""Tamper evidence: the trigger chains every recorded event; `duecall audit verify` recomputes
the chains in Python and names the first event that was changed behind duecall's back."""

import json
import os
import subprocess
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from psycopg import sql

from domain.ids import execution_id_for
from harness.processes import REPO_ROOT, duecall_command
from infrastructure.chain_verifier import anchors_from, call_family, chain_heads, verify
from infrastructure.container import Container
from infrastructure.event_hashes import CHAINED_NEW_EVENTS
from tests.support.audit_scenario import TENANT, Scenario, run_audit_scenario


@pytest.fixture
def scenario(container: Container) -> Scenario:
    return run_audit_scenario(container)


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True)


def _tamper(url: str, originator_id: UUID, version: int, old: str, new: str) -> None:
    with _connect(url) as conn:
        updated = conn.execute(
            "UPDATE duecall_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
            "%s, %s), 'UTF8') WHERE originator_id = %s AND originator_version = %s",
            (old, new, originator_id, version),
        ).rowcount
    assert updated == 1


def _audit(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(duecall_command("audit", *args), cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_untouched_chains_verify(scenario: Scenario, database_url: str) -> None:
    with _connect(database_url) as conn:
        result = verify(conn)
    assert result.first is None
    assert result.events >= 18
    assert result.aggregates >= 4
    done = _audit(database_url, "verify", str(scenario.call_id))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok" in done.stdout


def test_verify_names_an_event_edited_in_the_database(
    scenario: Scenario, database_url: str
) -> None:
    execution = execution_id_for(scenario.call_id, 2)
    _tamper(database_url, execution, 2, '"error_kind":"timeout"', '"error_kind":"network"')

    with _connect(database_url) as conn:
        assert call_family(conn, scenario.call_id)[1:] == [
            execution_id_for(scenario.call_id, n) for n in (1, 2, 3)
        ]
        result = verify(conn, tenant=TENANT)
    assert result.first is not None
    assert (result.first.originator_id, result.first.version) == (execution, 2)
    assert result.first.problem.startswith("hash mismatch")
    assert len(result.breaks) == 1

    done = _audit(database_url, "verify", str(scenario.call_id))
    assert done.returncode == 1
    assert f"{execution} version 2" in " ".join(done.stdout.split())


def test_verify_finds_a_deleted_event_and_a_rewritten_tail_against_anchors(
    scenario: Scenario, database_url: str, tmp_path: Path
) -> None:
    anchors_file = tmp_path / "anchors.json"
    anchored = _audit(database_url, "anchor", "--tenant", TENANT, "-o", str(anchors_file))
    assert anchored.returncode == 0, anchored.stderr
    document = json.loads(anchors_file.read_text())
    assert document["heads"][str(scenario.call_id)]["version"] == 11
    with _connect(database_url) as conn:
        assert chain_heads(conn, TENANT)["digest"] == document["digest"]
        conn.execute("DELETE FROM duecall_events WHERE originator_id = %s AND "
                     "originator_version = 5", (scenario.call_id,))
        # an attacker who also rewrites the hash table is caught only by an anchor
        last = execution_id_for(scenario.call_id, 3)
        conn.execute("DELETE FROM duecall_events WHERE originator_id = %s AND "
                     "originator_version = 2", (last,))
        conn.execute("DELETE FROM duecall_event_hashes WHERE originator_id = %s AND "
                     "originator_version = 2", (last,))
        plain = verify(conn, originator_ids=[scenario.call_id, last])
        checked = verify(conn, originator_ids=[scenario.call_id, last],
                         anchors=anchors_from(document))
    assert [(b.originator_id, b.version) for b in plain.breaks] == [(scenario.call_id, 5)]
    assert plain.breaks[0].problem.startswith("missing")
    assert {(b.originator_id, b.version) for b in checked.breaks} == {
        (scenario.call_id, 5), (last, 1)
    }
    done = _audit(database_url, "verify", "--anchors", str(anchors_file))
    assert done.returncode == 1


def test_events_recorded_before_the_trigger_existed_are_chained_by_the_migration(
    container: Container, database_url: str
) -> None:
    scenario = run_audit_scenario(container)
    with _connect(database_url) as conn:
        conn.execute("DELETE FROM duecall_event_hashes")
        conn.execute("DELETE FROM duecall_schema_migrations WHERE component = 'event_store'")
    Container.build(container.settings).close()  # the migration runs again: a backfill
    with _connect(database_url) as conn:
        assert verify(conn).first is None
        row = conn.execute("SELECT count(*), count(tenant_id) FROM duecall_event_hashes "
                           "WHERE originator_id = %s", (scenario.call_id,)).fetchone()
    assert row == (11, 11)


def test_chaining_reads_each_predecessor_by_key_not_the_whole_table(
    scenario: Scenario, database_url: str
) -> None:
    """The trigger's query, planned as the trigger's is (a transition table has no statistics:
    here a temporary table never analysed), finds previous hashes by primary key. As a join it
    was planned as a hash of the whole hashes table: a sequential scan per insert."""
    with _connect(database_url) as conn:
        conn.execute(  # the scenario's events under 100 more ids each: a table worth scanning
            "INSERT INTO duecall_events (originator_id, originator_version, topic, state) "
            "SELECT md5(g::text || e.originator_id::text)::uuid, e.originator_version, e.topic, "
            "e.state FROM generate_series(1, 100) AS g, duecall_events e "
            "ORDER BY g, e.notification_id"
        )
        conn.execute("ANALYZE duecall_event_hashes")
        conn.execute(
            "CREATE TEMPORARY TABLE new_events AS SELECT originator_id, originator_version + 1 "
            "AS originator_version, notification_id, topic, state FROM duecall_events "
            "ORDER BY notification_id DESC LIMIT 3"
        )
        plan = "\n".join(str(row[0]) for row in conn.execute(
            sql.SQL("EXPLAIN " + CHAINED_NEW_EVENTS)
        ).fetchall())
    assert "Index Scan using duecall_event_hashes_pkey" in plan, plan
    assert "Seq Scan on duecall_event_hashes" not in plan, plan
