"""The `schedules` read model: rows folded from a real pipeline's events (fires, skips, buffered
and missed fires, outcomes, pauses, triggers, updates, deletes) match the aggregates; any batch
size and a rebuild give the same rows; the list filters, sorts, pages and keeps tenants apart;
and `GET /v1/schedules` answers from it, waiting for a write's position when asked."""

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from application.clock import utcnow
from application.schedules import CreateSchedule, UpdateSchedule
from domain.errors import InvalidRequestError
from domain.schedule import Schedule
from domain.schedule_spec import ScheduleSpec
from harness.api_keys import bearer
from harness.target_server import TargetServer
from infrastructure.container import Container
from interfaces.api.app import create_app
from projections.schedules import TABLE, ScheduleFilters, SchedulesProjection, list_schedules
from tests.support.problems import assert_problem
from tests.support.read_models import catch_up, checksum, folded_rows, reset_read_models
from tests.support.waiting import wait_until
from tests.support.workload import workload_settings

TENANT = "t-sched-rm"


def _create(
    container: Container, name: str, url: str = "http://127.0.0.1:9/ok", *,
    tenant: str = TENANT, retry: dict[str, Any] | None = None, **spec: Any,
) -> Schedule:
    template: dict[str, Any] = {"request": {"method": "POST", "url": url, "body": "{}"}}
    if retry is not None:
        template["retry_policy"] = retry
    values = spec if "cron" in spec else {"interval_seconds": 3600, **spec}
    return container.schedules.create(
        CreateSchedule(tenant, name, template, ScheduleSpec.from_dict(values))
    ).schedule


def _latest(container: Container, schedule: Schedule) -> Schedule:
    return container.schedules.get(schedule.tenant_id, schedule.id)


def _expected(schedule: Schedule) -> dict[str, Any]:
    """The columns the row must have, from the aggregate."""
    described = schedule.describe()
    return {
        "tenant_id": schedule.tenant_id,
        "name": schedule.name,
        "status": described["status"],
        "pause_reason": schedule.pause_reason,
        "next_fire_at": schedule.next_nominal,
        "last_fired_nominal": schedule.last_fired,
        "last_fired_at": schedule.last_due_at,
        "last_triggered_at": described["last_triggered_at"],  # named as in the list
        **described["counts"],
        "consecutive_failures": schedule.consecutive_failures,
        "running": len(schedule.in_flight),
        "buffered": len(schedule.buffered),
        "created_at": schedule.created_on,
        "updated_at": schedule.modified_on,
        "version": schedule.version,
    }


def _matches(row: dict[str, Any], schedule: Schedule) -> None:
    expected = _expected(schedule)
    assert {k: row[k] for k in expected} == expected, schedule.name


def test_rows_follow_a_real_pipeline_and_match_the_aggregates(
    rm_container: Container, database_url: str
) -> None:
    c = rm_container
    with TargetServer() as target:
        missed = _create(c, "missed", f"{target.url}/ok", interval_seconds=1, on_missed="skip",
                         catchup_window_seconds=1)
        time.sleep(2.5)  # no worker yet: nominal times go by
        c.start_projections()
        c.start_workers()
        ok = _create(c, "ok", f"{target.url}/ok", interval_seconds=1)
        failing = _create(c, "failing", f"{target.url}/status/500", interval_seconds=1,
                          pause_after_failures=2, retry={"max_attempts": 1})
        limited = _create(c, "limited", f"{target.url}/ok", interval_seconds=1, max_runs=2)
        buffering = _create(c, "buffering", f"{target.url}/slow/1.5", interval_seconds=1,
                            overlap="buffer_one")
        replacing = _create(c, "replacing", f"{target.url}/slow/2.5", interval_seconds=1,
                            overlap="cancel_other")
        every = [missed, ok, failing, limited, buffering, replacing]

        wait_until(lambda: _latest(c, limited).status == "finished", timeout=15)
        finished = folded_rows(c, "schedules", TABLE)[limited.id]
        assert (finished["status"], finished["finish_reason"]) == ("finished", "max_runs")
        assert (finished["runs"], finished["next_fire_at"]) == (2, None)
        c.schedules.update(TENANT, limited.id, UpdateSchedule(
            name="limited-again", spec=ScheduleSpec.from_dict({"cron": "0 3 * * *"})))

        wait_until(lambda: _latest(c, failing).status == "paused", timeout=15)
        wait_until(lambda: _latest(c, ok).succeeded >= 3 and _latest(c, missed).missed >= 1
                   and _latest(c, replacing).fired >= 3, timeout=15)
        for schedule in (missed, ok, buffering, replacing):
            c.schedules.pause(TENANT, schedule.id)
        (trigger_call,) = c.schedules.trigger(TENANT, ok.id).calls  # paused: fires on demand
        wait_until(lambda: not any(_latest(c, s).in_flight for s in every), timeout=15)

    rows = folded_rows(c, "schedules", TABLE)
    for schedule in every:
        _matches(rows[schedule.id], _latest(c, schedule))
    assert rows[failing.id]["pause_reason"] == "failures"
    assert rows[failing.id]["failed"] >= 2
    assert rows[failing.id]["consecutive_failures"] >= 2
    assert rows[ok.id]["pause_reason"] == "client"
    assert (rows[ok.id]["triggered"], rows[ok.id]["last_call_id"]) == (1, trigger_call.id)
    assert rows[ok.id]["last_triggered_at"] is not None
    assert rows[ok.id]["succeeded"] == rows[ok.id]["fired"] + 1  # every fire and the trigger
    assert rows[missed.id]["missed"] >= 1
    assert rows[buffering.id]["buffered"] + rows[buffering.id]["skipped"] >= 1
    assert rows[replacing.id]["running"] == 0
    assert rows[replacing.id]["fired"] >= 3
    again = rows[limited.id]  # a finished schedule with a spec that fires is active again
    assert (again["status"], again["finish_reason"], again["name"]) == (
        "active", None, "limited-again")
    assert (again["kind"], again["cron"], again["interval_seconds"]) == ("cron", "0 3 * * *", None)
    assert again["next_fire_at"] is not None
    assert again["runs"] == 2

    live = checksum(database_url, TABLE)
    c.read_models.rebuild("schedules")
    assert checksum(database_url, TABLE) == live


def test_any_batch_size_folds_to_the_same_rows(
    rm_container: Container, database_url: str
) -> None:
    c = rm_container
    london = _create(c, "london", cron="*/5 * * * *", timezone="Europe/London",
                     overlap="skip", on_missed="all")
    moved = _create(c, "moved", interval_seconds=60)
    gone = _create(c, "gone", interval_seconds=90)
    c.schedules.pause(TENANT, london.id)
    c.schedules.resume(TENANT, london.id)
    c.schedules.pause(TENANT, london.id)
    calls = [c.schedules.trigger(TENANT, moved.id).calls[0] for _ in range(2)]  # never run
    c.schedules.update(TENANT, moved.id, UpdateSchedule(
        name="renamed", spec=ScheduleSpec.from_dict({"cron": "30 6 * * 1", "max_runs": 5})))
    c.schedules.delete(TENANT, gone.id)
    catch_up(c)
    expected = checksum(database_url, TABLE)

    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        rows = {r["id"]: r for r in conn.execute(f"SELECT * FROM {TABLE}").fetchall()}
    for schedule in (london, moved, gone):
        _matches(rows[schedule.id], _latest(c, schedule))
    assert (rows[london.id]["kind"], rows[london.id]["cron"]) == ("cron", "*/5 * * * *")
    assert (rows[london.id]["timezone"], rows[london.id]["overlap"],
            rows[london.id]["on_missed"]) == ("Europe/London", "skip", "all")
    assert rows[moved.id]["name"] == "renamed"
    assert (rows[moved.id]["kind"], rows[moved.id]["max_runs"]) == ("cron", 5)
    assert (rows[moved.id]["triggered"], rows[moved.id]["running"]) == (2, 2)
    assert rows[moved.id]["last_call_id"] == calls[-1].id
    assert (rows[gone.id]["status"], rows[gone.id]["next_fire_at"]) == ("deleted", None)
    assert (rows[gone.id]["kind"], rows[gone.id]["interval_seconds"]) == ("interval", 90)

    for size in (1, 2, 5):
        c.read_models.reset("schedules")
        c.read_models.runner_for(SchedulesProjection(), size).catch_up(lambda _: None)
        assert checksum(database_url, TABLE) == expected, size


def _ids(page: Any) -> list[UUID]:
    return [item["id"] for item in page.items]


def test_the_list_filters_sorts_pages_and_keeps_tenants_apart(rm_container: Container) -> None:
    c = rm_container
    now = utcnow()
    hours = (3, 1, 4, 5, 2)  # each one's next fire, hours from now
    made = [_create(c, f"job-{i}", interval_seconds=86400,
                    anchor=(now + timedelta(hours=h)).isoformat()) for i, h in enumerate(hours)]
    c.schedules.pause(TENANT, made[1].id)
    c.schedules.delete(TENANT, made[2].id)
    theirs = _create(c, "job-0", tenant="t-other")
    catch_up(c)
    ids = [s.id for s in made]
    everything = ["active", "paused", "finished", "deleted"]

    with c.read_models.reading("schedules") as (curs, _):
        def listed(**kwargs: Any) -> list[UUID]:
            filters = ScheduleFilters(kwargs.pop("status", None), kwargs.pop("name", None))
            return _ids(list_schedules(curs, TENANT, filters, **kwargs))

        def walk(sort: str, status: list[str] | None) -> list[UUID]:
            seen: list[UUID] = []
            cursor = None
            while True:
                page = list_schedules(curs, TENANT, ScheduleFilters(status), sort=sort,
                                      limit=2, cursor=cursor)
                seen += _ids(page)
                if (cursor := page.next_cursor) is None:
                    return seen

        newest_first = [ids[4], ids[3], ids[1], ids[0]]  # not the deleted one
        assert listed() == newest_first
        assert listed(status=["deleted"]) == [ids[2]]
        assert listed(status=["paused"]) == [ids[1]]
        assert listed(status=["active", "paused"]) == newest_first
        assert listed(name="job-0") == [ids[0]]
        assert listed(sort="next_fire") == [ids[1], ids[4], ids[0], ids[3]]
        assert walk("-created", None) == newest_first
        # by next fire, everything: the deleted one has none, so comes last
        assert walk("next_fire", everything) == [ids[1], ids[4], ids[0], ids[3], ids[2]]
        assert walk("-created", everything) == ids[::-1]
        page = list_schedules(curs, TENANT, ScheduleFilters(), limit=1, include_total=True)
        assert page.total == 4
        assert "next_fire_order" not in page.items[0]
        assert page.items[0]["next_fire_at"] == made[4].next_nominal
        assert _ids(list_schedules(curs, "t-other", ScheduleFilters())) == [theirs.id]
        assert listed(name="nobody") == []

        assert page.next_cursor is not None
        with pytest.raises(InvalidRequestError) as wrong_sort:
            list_schedules(curs, TENANT, ScheduleFilters(), sort="next_fire",
                           cursor=page.next_cursor)
        assert wrong_sort.value.field == "cursor"
        with pytest.raises(InvalidRequestError) as unknown:
            list_schedules(curs, TENANT, ScheduleFilters(["sleeping"]))
        assert unknown.value.field == "status"


@pytest.fixture
def client(database_url: str, clean_database: str) -> Iterator[TestClient]:
    with TestClient(create_app(workload_settings(database_url))) as test_client:
        reset_read_models(_container(test_client))
        yield test_client


def _container(client: TestClient) -> Container:
    container: Container = client.app.state.container  # type: ignore[attr-defined]
    return container


def test_get_v1_schedules_lists_pages_and_waits_for_a_write(client: TestClient) -> None:
    c = _container(client)
    mine = bearer(c.tenants.create("sched-list-a").key)
    theirs = bearer(c.tenants.create("sched-list-b").key)
    c.start_projections()
    made = [_create(c, f"api-{i}", tenant="sched-list-a") for i in range(3)]
    c.schedules.pause("sched-list-a", made[0].id)
    written = c.read_models.head()

    first = client.get("/v1/schedules", params={"limit": 2, "min_position": written},
                       headers=mine)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["meta"]["projection"] == "schedules"
    assert body["meta"]["stale"] is False
    assert body["meta"]["position"] >= written
    assert first.headers["X-Duecall-Position"] == str(body["meta"]["position"])
    assert [item["name"] for item in body["items"]] == ["api-2", "api-1"]
    assert body["next_cursor"] is not None
    assert body["total"] is None
    item = body["items"][0]
    assert (item["status"], item["kind"], item["interval_seconds"]) == ("active", "interval", 3600)
    assert item["next_fire_at"] is not None
    assert item["fired"] == 0
    assert "tenant_id" not in item
    assert "next_fire_order" not in item

    rest = client.get("/v1/schedules", params={"limit": 2, "cursor": body["next_cursor"]},
                      headers=mine).json()
    assert [i["name"] for i in rest["items"]] == ["api-0"]
    assert rest["next_cursor"] is None

    paused = client.get("/v1/schedules", params={"status": "paused", "include_total": True},
                        headers=mine).json()
    assert [(i["name"], i["pause_reason"]) for i in paused["items"]] == [("api-0", "client")]
    assert paused["total"] == 1
    soonest = client.get("/v1/schedules", params={"sort": "next_fire"}, headers=mine).json()
    assert len(soonest["items"]) == 3
    named = client.get("/v1/schedules", params={"name": "api-1"}, headers=mine).json()
    assert [i["id"] for i in named["items"]] == [str(made[1].id)]

    assert client.get("/v1/schedules", headers=theirs).json()["items"] == []
    problem = assert_problem(client.get("/v1/schedules", params={"status": "sleeping"},
                                        headers=mine), 422)
    assert "status" in str(problem)
    cursor_problem = assert_problem(client.get(
        "/v1/schedules", params={"sort": "next_fire", "cursor": body["next_cursor"]},
        headers=mine), 422)
    assert "cursor" in str(cursor_problem)
