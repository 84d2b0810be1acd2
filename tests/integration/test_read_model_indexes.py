"""The read models' indexes over caller-chosen text are over bounded keys, and the queries still
use them (EXPLAIN, sequential scans off) and give the same answers."""

from collections.abc import Iterator

import psycopg
import pytest
from psycopg.rows import DictRow, dict_row

from infrastructure.container import Container
from projections.executions import ExecutionFilters, latest_executions, list_executions
from projections.index_keys import has_tag
from projections.query import Where, fetch_page
from projections.service_calls import SORTS, TABLE, ServiceCallFilters
from projections.statistics_schema import table
from tests.support.read_models import catch_up
from tests.support.workload import run_until_idle, submit_calls


@pytest.fixture
def curs(rm_container: Container, database_url: str) -> Iterator[psycopg.Cursor[DictRow]]:
    submit_calls(rm_container, 12)
    run_until_idle(rm_container)
    catch_up(rm_container)
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
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
