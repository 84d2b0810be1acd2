"""The read models' indexes over caller-chosen text are over bounded keys, and the queries still
use them (EXPLAIN, sequential scans off) and give the same answers; the folds' updates find
their rows through the primary keys on tables of tens of thousands of rows (EXPLAIN)."""

from collections.abc import Iterator, Sequence
from typing import Any, cast

import psycopg
import pytest
from psycopg.rows import DictRow, dict_row

from infrastructure.container import Container
from projections.executions import ExecutionFilters, latest_executions, list_executions
from projections.folding import RowChanges, Write, write_json
from projections.index_keys import has_tag
from projections.query import Where, fetch_page
from projections.service_calls import SORTS, TABLE, ServiceCallFilters
from projections.statistics_schema import table
from projections.status_intervals import TABLE as INTERVALS
from tests.support.read_models import catch_up, reset_read_models
from tests.support.workload import run_until_idle, submit_calls


@pytest.fixture(scope="module")
def curs(
    module_rm_container: Container, database_url: str
) -> Iterator[psycopg.Cursor[DictRow]]:
    """A workload's read models, analyzed, on a connection that plans without sequential scans
    (the module's tests only read them)."""
    submit_calls(module_rm_container, 12)
    run_until_idle(module_rm_container)
    catch_up(module_rm_container)
    with psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as conn:
        conn.execute("ANALYZE")
        conn.execute("SET enable_seqscan = off")
        yield conn.cursor()


def _plan(curs: psycopg.Cursor[DictRow], sql: str, params: list[object]) -> str:
    curs.execute(f"EXPLAIN {sql}", params)
    return "\n".join(str(next(iter(row.values()))) for row in curs.fetchall())


def _calls_plan(curs: psycopg.Cursor[DictRow], filters: ServiceCallFilters) -> str:
    """The plan of a page of calls (the planner's choice, but for sequential scans)."""
    where: Where = filters.where("t1")
    return _plan(curs, f"SELECT id FROM {TABLE} WHERE {where.sql}", where.params)


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        (ServiceCallFilters(name="alpha"), "duecall_rm_service_calls_name_key"),
        (ServiceCallFilters(correlation_id="corr-3"), "duecall_rm_service_calls_correlation_key"),
    ],
    ids=["name", "correlation_id"],
)
def test_service_call_filters_use_the_bounded_key_indexes(
    curs: psycopg.Cursor[DictRow], filters: ServiceCallFilters, index: str
) -> None:
    assert index in _calls_plan(curs, filters)


def test_the_tag_filter_can_use_the_tag_keys_index(curs: psycopg.Cursor[DictRow]) -> None:
    # without the tenant clause: on a table this small the (tenant, ...) btrees win otherwise
    plan = _plan(curs, f"SELECT id FROM {TABLE} WHERE {has_tag()}", ["batch-1", "batch-1"])
    assert "duecall_rm_service_calls_tag_keys" in plan


def test_service_call_filters_answer_as_comparisons_of_the_text(
    curs: psycopg.Cursor[DictRow],
) -> None:
    def ids(filters: ServiceCallFilters) -> set[object]:
        page = fetch_page(curs, TABLE, filters.where("t1"), SORTS["-created"], 100)
        return {item["id"] for item in page.items}

    def plain(condition: str, value: str) -> set[object]:
        curs.execute(f"SELECT id FROM {TABLE} WHERE tenant_id = 't1' AND {condition}", [value])
        return {row["id"] for row in curs.fetchall()}

    assert ids(ServiceCallFilters(name="beta")) == plain("name = %s", "beta")
    assert ids(ServiceCallFilters(tag="batch-0")) == plain("%s = ANY(tags)", "batch-0")
    assert ids(ServiceCallFilters(correlation_id="corr-5")) == plain("correlation_id = %s",
                                                                     "corr-5")
    assert len(plain("name = %s", "beta")) == 4


def test_executions_by_name_and_latest_per_name_use_the_name_key_index(
    curs: psycopg.Cursor[DictRow],
) -> None:
    where = ExecutionFilters(name="alpha").where("t1")
    by_name = _plan(curs, f"SELECT * FROM duecall_rm_executions WHERE {where.sql} "
                          "ORDER BY started_at DESC, id DESC LIMIT 10", where.params)
    assert "duecall_rm_executions_name_key" in by_name
    from projections.executions import _LATEST

    curs.execute(f"EXPLAIN {_LATEST}", {"t": "t1"})
    assert "duecall_rm_executions_name_key" in "\n".join(
        str(next(iter(r.values()))) for r in curs.fetchall()
    )
    latest = latest_executions(curs, "t1")
    assert sorted(row["name"] for row in latest) == ["alpha", "beta", "gamma"]
    newest = list_executions(curs, "t1", ExecutionFilters(name="beta"), limit=1).items
    assert [row["id"] for row in latest_executions(curs, "t1", "beta")] == [newest[0]["id"]]


def test_statistics_rows_are_unique_by_bounded_keys_of_host_and_name(
    curs: psycopg.Cursor[DictRow],
) -> None:
    curs.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s",
                 [f"{table('minute')}_key"])
    row = curs.fetchone()
    assert row is not None
    assert "UNIQUE" in row["indexdef"]
    assert "duecall_index_key" in row["indexdef"] or "md5" in row["indexdef"]


class _Explaining:
    """A cursor that EXPLAINs the statements given to it (and runs nothing)."""

    def __init__(self, curs: psycopg.Cursor[DictRow]) -> None:
        self.curs, self.plans = curs, list[str]()

    def execute(self, query: bytes, params: Sequence[object]) -> None:
        self.curs.execute(b"EXPLAIN " + query, params)
        self.plans.append("\n".join(str(next(iter(r.values()))) for r in self.curs.fetchall()))


_MANY = 20_000
_FILL = {
    TABLE: f"INSERT INTO {TABLE} (id, tenant_id, name, status, due_at, created_at, updated_at, "
           "version) SELECT gen_random_uuid(), 't1', 'n' || i %% 50, 'succeeded', now(), now(), "
           "now(), 3 FROM generate_series(1, %s) AS i",
    "duecall_rm_executions": "INSERT INTO duecall_rm_executions (id, tenant_id, service_call_id, "
           "attempt, started_at) SELECT gen_random_uuid(), 't1', gen_random_uuid(), 1, now() "
           "FROM generate_series(1, %s) AS i",
    INTERVALS: f"INSERT INTO {INTERVALS} (service_call_id, version, tenant_id, status, "
           "valid_from, valid_to) SELECT gen_random_uuid(), v, 't1', 'scheduled', now(), now() "
           "FROM generate_series(1, %s / 2), generate_series(1, 2) AS v",
}


@pytest.fixture(scope="module")
def many_rows(
    module_rm_container: Container, database_url: str
) -> Iterator[psycopg.Cursor[DictRow]]:
    """The read models' tables with tens of thousands of rows (and nothing else), analyzed
    (sequential scans on); the tests only EXPLAIN."""
    reset_read_models(module_rm_container)
    with psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as conn:
        for fill in _FILL.values():
            conn.execute(fill, [_MANY])
        conn.execute(f"ANALYZE {', '.join(_FILL)}")
        yield conn.cursor()


def _keys(curs: psycopg.Cursor[DictRow], table: str, column: str, n: int) -> list[Any]:
    curs.execute(f"SELECT DISTINCT {column} AS k FROM {table} LIMIT {n}")
    return [row["k"] for row in curs.fetchall()]


@pytest.mark.parametrize("n", [1, 20])
def test_read_model_updates_find_their_rows_through_an_index(
    many_rows: psycopg.Cursor[DictRow], n: int
) -> None:
    explaining = _Explaining(many_rows)
    curs = cast(psycopg.Cursor[DictRow], explaining)
    calls = RowChanges(TABLE)
    for call in _keys(many_rows, TABLE, "id", n):
        calls.update(call, {"status": "running", "attempt": 1})
    executions = RowChanges("duecall_rm_executions")
    for execution in _keys(many_rows, "duecall_rm_executions", "id", n):
        executions.update(execution, {"outcome": "succeeded", "duration_ms": 3.0})
    ended = [{"service_call_id": call, "valid_to": "2030-01-01T00:00:00Z"}
             for call in _keys(many_rows, INTERVALS, "service_call_id", n)]
    write_json(curs, calls.writes())
    write_json(curs, executions.writes())
    write_json(curs, [Write(INTERVALS, ended, "service_call_id", "AND t.valid_to = 'infinity'")])

    for updated, plan in zip([TABLE, "duecall_rm_executions", INTERVALS], explaining.plans,
                             strict=True):
        assert f"Seq Scan on {updated}" not in plan, plan
        assert f"{updated}_pkey" in plan, plan
