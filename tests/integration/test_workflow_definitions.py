"""Stored workflow definitions on a real PostgreSQL: two first stores of one name at once
(one write conflict, tried again: one version, or two); an older version read back past the
aggregate's snapshots; the `workflow_definitions` read model matching the aggregates, for any
batch size and after a rebuild."""

import threading
from typing import Any

import psycopg
from psycopg.rows import dict_row

from application.workflow_definitions import Stored
from domain.workflow_stored_definition import stored_definition_id
from infrastructure.container import Container
from projections.workflow_definitions import TABLE, WorkflowDefinitionsProjection
from tests.support.read_models import catch_up, checksum

TENANT = "t-wf-defs"


def definition(path: str = "a", steps: int = 1) -> dict[str, Any]:
    return {"steps": [
        {"id": f"s{n}", "needs": [f"s{n - 1}"] if n else [],
         "request": {"method": "GET", "url": f"https://e.example/{path}"}}
        for n in range(steps)
    ]}


def _at_once(container: Container, *documents: dict[str, Any]) -> list[Stored]:
    """Each document put under the same name by a thread of its own, all released together."""
    start = threading.Barrier(len(documents))
    results: list[Stored] = []

    def put(document: dict[str, Any]) -> None:
        start.wait()
        results.append(container.workflows.definitions.put(TENANT, "raced", document))

    threads = [threading.Thread(target=put, args=(d,)) for d in documents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == len(documents)
    return results


def test_two_first_stores_at_once_record_one_version_or_two(container: Container) -> None:
    same = _at_once(container, definition(), definition())
    assert [s.definition.version for s in same] == [1, 1]
    assert sorted(s.added for s in same) == [False, True]

    other = _at_once(container, definition("b"), definition("c"))
    assert sorted(s.definition.version for s in other) == [2, 3]
    assert all(s.added for s in other)
    newest = container.workflows.definitions.get(TENANT, "raced")
    assert newest.version == 3


def test_an_older_version_reads_back_past_the_snapshots(container: Container) -> None:
    definitions = container.workflows.definitions
    for n in range(1, 61):  # the aggregate is snapshotted every 50 events
        assert definitions.put(TENANT, "long", definition(f"v{n}")).definition.version == n
    assert definitions.get(TENANT, "long").definition["steps"][0]["request"]["url"].endswith(
        "/v60")
    for version in (1, 49, 50, 51, 60):
        stored = definitions.get(TENANT, "long", version)
        assert stored.version == version
        assert stored.definition["steps"][0]["request"]["url"].endswith(f"/v{version}")
    with psycopg.connect(container.database_url) as conn:
        snapshots = conn.execute(
            "SELECT count(*) FROM duecall_snapshots WHERE originator_id = %s",
            (stored_definition_id(TENANT, "long"),),
        ).fetchone()
    assert snapshots is not None
    assert snapshots[0] >= 1


def test_the_read_model_matches_the_aggregates_for_any_batch_size(
    rm_container: Container, database_url: str
) -> None:
    definitions = rm_container.workflows.definitions
    definitions.put(TENANT, "one", definition())
    definitions.put(TENANT, "two", definition(steps=3))
    definitions.put(TENANT, "two", definition(steps=5))
    definitions.put(TENANT, "two", definition(steps=5))  # the same: nothing recorded
    definitions.put("t-other", "one", definition(steps=2))
    catch_up(rm_container)
    expected = checksum(database_url, TABLE)

    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        rows = conn.execute(f"SELECT * FROM {TABLE} ORDER BY tenant_id, name").fetchall()
    assert [(r["tenant_id"], r["name"], r["version"], r["steps"]) for r in rows] == [
        ("t-other", "one", 1, 2), (TENANT, "one", 1, 1), (TENANT, "two", 2, 5),
    ]
    for row in rows:
        stored = definitions.get(row["tenant_id"], row["name"])
        assert row["id"] == stored.id
        assert row["updated_at"] == stored.modified_on
        assert row["created_at"] == definitions.get(row["tenant_id"], row["name"], 1).created_on

    for size in (1, 2):
        rm_container.read_models.reset("workflow_definitions")
        rm_container.read_models.runner_for(WorkflowDefinitionsProjection(), size).catch_up(
            lambda _: None
        )
        assert checksum(database_url, TABLE) == expected, size
