"""The schedule API over real HTTP against a real `duecall serve` (API and workers) on a real
PostgreSQL: create, read, change, pause, resume, trigger, backfill, preview, fires, events and
delete; refusals as problem+json naming the field; another tenant's schedule is a 404.

The module has a server of its own on a database of its own: its schedules never fire into
another module's counts. Specs fire rarely (yearly, or hourly in the past for backfills), so
nothing fires on its own while a test looks.
"""

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from harness.databases import fresh_database
from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer
from tests.support.problems import assert_problem
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

YEARLY = {"cron": "0 0 1 1 *"}  # fires on 1 January only: never while a test runs


@pytest.fixture(scope="module")
def duecall_server(server_url: str) -> Iterator[DuecallProcess]:
    """This module's server (overrides the e2e conftest's), on a database of its own."""
    with fresh_database(server_url, prefix="duecall_sched") as url, DuecallProcess(url) as server:
        yield server


@pytest.fixture
def make(api: httpx.Client, target: TargetServer) -> Callable[..., dict[str, Any]]:
    def create(spec: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        answer = api.post("/v1/schedules", json=body(target, spec, **fields))
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        return created

    return create


def body(target: TargetServer, spec: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "name": f"report-{uuid.uuid4().hex[:6]}",
        "spec": dict(YEARLY) if spec is None else spec,
        "call": {"request": {"url": f"{target.url}/sched", "body": {"report": "daily"}}},
        **fields,
    }


def fields_of(answer: httpx.Response) -> list[str]:
    problem = assert_problem(answer, 422)
    return [error["field"] for error in problem["errors"]]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- create, read, change ----------------------------------------------------------------------


def test_create_answers_201_with_the_schedule_and_its_location(
    api: httpx.Client, target: TargetServer
) -> None:
    spec = {"cron": "30 9 * * MON-FRI", "timezone": "Europe/London", "overlap": "skip"}
    answer = api.post("/v1/schedules", json=body(target, spec, name="weekday-report"))

    assert answer.status_code == 201, answer.text
    schedule = answer.json()
    assert answer.headers["location"] == f"/v1/schedules/{schedule['id']}"
    assert schedule["name"] == "weekday-report"
    assert schedule["status"] == "active"
    assert schedule["spec"]["cron"] == "30 9 * * MON-FRI"
    assert schedule["spec"]["timezone"] == "Europe/London"
    assert schedule["spec"]["overlap"] == "skip"
    assert schedule["spec"]["gap"] == "shift"  # the defaults, stated
    request = schedule["call"]["request"]
    assert json.loads(request["body"]) == {"report": "daily"}  # encoded as a call's body
    assert request["headers"]["Content-Type"] == "application/json"
    assert schedule["call"]["retry_policy"]["max_attempts"] == 5  # the tenant's default
    next_fire = utc(schedule["next_fire_at"])
    assert next_fire > datetime.now(UTC)
    assert next_fire.astimezone(ZoneInfo("Europe/London")).strftime("%H:%M %a") in {
        f"09:30 {day}" for day in ("Mon", "Tue", "Wed", "Thu", "Fri")
    }
    assert schedule["counts"]["fired"] == 0

    assert api.get(answer.headers["location"]).json() == schedule


def test_patch_changes_the_name_spec_or_call(
    api: httpx.Client, make: Callable[..., dict[str, Any]], target: TargetServer
) -> None:
    schedule = make()
    path = f"/v1/schedules/{schedule['id']}"

    renamed = api.patch(path, json={"name": "renamed"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "renamed"
    assert renamed.json()["spec"] == schedule["spec"]

    respecced = api.patch(path, json={"spec": {"interval_seconds": 7200, "starting": "00:05"}})
    assert respecced.status_code == 200, respecced.text
    spec = respecced.json()["spec"]
    assert (spec["cron"], spec["interval_seconds"], spec["starting"]) == (None, 7200, "00:05")
    next_fire = utc(respecced.json()["next_fire_at"])
    assert next_fire.minute == 5
    assert next_fire.hour % 2 == 0

    call = {"request": {"method": "PUT", "url": f"{target.url}/other"}, "tags": ["nightly"],
            "retry_policy": {"max_attempts": 2}}
    recalled = api.patch(path, json={"call": call})
    assert recalled.status_code == 200, recalled.text
    assert recalled.json()["call"]["request"]["method"] == "PUT"
    assert recalled.json()["call"]["tags"] == ["nightly"]
    assert recalled.json()["call"]["retry_policy"]["max_attempts"] == 2
    assert recalled.json()["name"] == "renamed"

    unchanged = api.patch(path, json={})
    assert unchanged.status_code == 200
    assert unchanged.json()["version"] == recalled.json()["version"]

    assert fields_of(api.patch(path, json={"spec": {"cron": "0 0 30 2 *"}})) == ["spec.cron"]
    assert fields_of(api.patch(path, json={"colour": "red"})) == ["colour"]


def test_pause_resume_and_delete_and_what_a_deleted_schedule_refuses(
    api: httpx.Client, make: Callable[..., dict[str, Any]]
) -> None:
    schedule = make()
    path = f"/v1/schedules/{schedule['id']}"

    paused = api.post(f"{path}/pause")
    assert paused.status_code == 200, paused.text
    assert (paused.json()["status"], paused.json()["pause_reason"]) == ("paused", "client")
    assert api.post(f"{path}/pause").json()["version"] == paused.json()["version"]  # no change

    resumed = api.post(f"{path}/resume")
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["status"], resumed.json()["pause_reason"]) == ("active", None)

    deleted = api.delete(path)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["status"] == "deleted"
    assert deleted.json()["next_fire_at"] is None
    assert api.delete(path).json()["version"] == deleted.json()["version"]  # no change
    gone = assert_problem(api.get(path), 404)
    assert "was deleted" in gone["detail"]
    assert [e["type"] for e in api.get(f"{path}/events").json()["items"]][-1] == "Schedule.Deleted"

    for command in ("pause", "resume", "trigger"):
        problem = assert_problem(api.post(f"{path}/{command}"), 409)
        assert problem["status_of_schedule"] == "deleted"
        assert f"cannot {command} a schedule that is deleted" in problem["detail"]
    assert_problem(api.patch(path, json={"name": "again"}), 409)
    assert_problem(api.patch(path, json={}), 409)
    window = {"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"}
    assert_problem(api.post(f"{path}/backfill", json=window), 409)
    assert api.get(f"{path}/preview").json()["items"] == []


# -- trigger, backfill, fires ------------------------------------------------------------------


def test_trigger_fires_a_call_now_and_it_is_among_the_fires(
    api: httpx.Client, make: Callable[..., dict[str, Any]], target: TargetServer
) -> None:
    schedule = make()
    path = f"/v1/schedules/{schedule['id']}"
    before = datetime.now(UTC)

    answer = api.post(f"{path}/trigger")

    assert answer.status_code == 201, answer.text
    call = answer.json()["call"]
    assert answer.headers["location"] == f"/v1/service-calls/{call['id']}"
    assert call["idempotency_key"] == f"sched:{schedule['id']}:trigger:{call['id']}"
    assert before - timedelta(seconds=1) <= utc(call["due_at"]) <= datetime.now(UTC)
    assert answer.json()["schedule"]["counts"]["triggered"] == 1
    submitted = api.get(f"/v1/service-calls/{call['id']}")
    assert submitted.status_code == 200
    assert submitted.json()["request"]["url"] == f"{target.url}/sched"
    wait_until(lambda: api.get(f"/v1/service-calls/{call['id']}").json()["status"]
               == "succeeded", timeout=10)

    fires = api.get(f"{path}/fires").json()
    assert fires["items"][0]["call_id"] == call["id"]
    assert fires["items"][0]["kind"] == "trigger"
    assert fires["items"][0]["call_status"] == "succeeded"


def test_backfill_dry_run_says_what_it_would_fire_and_a_backfill_fires_it_once(
    api: httpx.Client, make: Callable[..., dict[str, Any]]
) -> None:
    schedule = make({"interval_seconds": 3600})
    path = f"/v1/schedules/{schedule['id']}"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    window = {"start": (hour - timedelta(hours=3)).isoformat(),
              "end": (hour - timedelta(hours=1)).isoformat()}

    dry = api.post(f"{path}/backfill", json={**window, "dry_run": True})

    assert dry.status_code == 200, dry.text
    planned = dry.json()
    assert planned["dry_run"] is True
    nominal = [hour - timedelta(hours=n) for n in (3, 2, 1)]
    assert [utc(i["nominal"]) for i in planned["items"]] == nominal
    assert {i["action"] for i in planned["items"]} == {"fire"}
    assert all(i["due_at"] and i["call_id"] is None for i in planned["items"])
    assert planned["calls"] == []
    assert planned["more"] is False
    assert api.get(f"{path}/fires").json()["items"] == []  # nothing fired

    done = api.post(f"{path}/backfill", json=window)

    assert done.status_code == 200, done.text
    calls = done.json()["calls"]
    assert [utc(c["nominal"]) for c in calls] == nominal
    assert [c["idempotency_key"] for c in calls] == [
        f"sched:{schedule['id']}:{n:%Y-%m-%dT%H:%M:%SZ}" for n in nominal
    ]
    assert [i["call_id"] for i in done.json()["items"]] == [c["id"] for c in calls]
    fires = api.get(f"{path}/fires").json()["items"]
    assert [f["call_id"] for f in fires] == [c["id"] for c in reversed(calls)]  # newest first
    assert {f["kind"] for f in fires} == {"backfill"}

    again = api.post(f"{path}/backfill", json=window)  # fired before: not again
    assert again.json()["items"] == []
    assert again.json()["calls"] == []

    backwards = {"start": window["end"], "end": window["start"]}
    assert fields_of(api.post(f"{path}/backfill", json=backwards)) == ["end"]
    assert fields_of(api.post(f"{path}/backfill", json={**window, "start": "0001-01-01T00:00:00Z"})
                     ) == ["start"]


def test_fires_come_newest_first_in_pages(
    api: httpx.Client, make: Callable[..., dict[str, Any]]
) -> None:
    schedule = make()
    path = f"/v1/schedules/{schedule['id']}"
    triggered = [api.post(f"{path}/trigger").json()["call"]["id"] for _ in range(3)]

    first = api.get(f"{path}/fires", params={"limit": 2}).json()
    assert [f["call_id"] for f in first["items"]] == triggered[:0:-1]
    rest = api.get(f"{path}/fires", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [f["call_id"] for f in rest["items"]] == triggered[:1]
    assert rest["next_cursor"] is None

    assert fields_of(api.get(f"{path}/fires", params={"limit": 0})) == ["limit"]


# -- preview -----------------------------------------------------------------------------------


def test_preview_shows_the_next_times_with_their_wall_times_and_dst_notes(
    api: httpx.Client, make: Callable[..., dict[str, Any]]
) -> None:
    # 2030-03-10: New York springs forward at 02:00; 02:30 does not exist that day
    schedule = make({"cron": "30 2 * * *", "timezone": "America/New_York"})
    path = f"/v1/schedules/{schedule['id']}/preview"

    answer = api.get(path, params={"count": 3, "after": "2030-03-09T00:00:00Z"})

    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert preview["timezone"] == "America/New_York"
    assert preview["tzdata"]
    items = preview["items"]
    assert [i["nominal"] for i in items] == [
        "2030-03-09T07:30:00Z", "2030-03-10T07:30:00Z", "2030-03-11T06:30:00Z"
    ]
    assert [i["dst_note"] for i in items] == [None, "gap_shifted", None]
    assert items[1]["local"] == "2030-03-10T02:30:00"  # the wall time matched
    assert items[1]["zoned"] == "2030-03-10T03:30:00-04:00"  # the clock then
    assert all(i["fires"] for i in items)

    assert len(api.get(path).json()["items"]) == 10  # from now, 10 by default
    assert fields_of(api.get(path, params={"count": 0})) == ["count"]
    assert fields_of(api.get(path, params={"count": 101})) == ["count"]
    assert fields_of(api.get(path, params={"after": "0001-01-01T00:00:00Z"})) == ["after"]


def test_a_spec_is_previewed_without_being_stored(api: httpx.Client) -> None:
    spec = {"cron": "30 1 * * *", "timezone": "America/New_York", "fold": "both"}

    answer = api.post("/v1/schedules:preview",
                      json={"spec": spec, "count": 3, "after": "2030-11-02T12:00:00Z"})

    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    # 2030-11-03: 01:30 happens twice (EDT, then EST); fold=both fires at each
    assert [(i["nominal"], i["dst_note"]) for i in items] == [
        ("2030-11-03T05:30:00Z", "fold_first"),
        ("2030-11-03T06:30:00Z", "fold_second"),
        ("2030-11-04T06:30:00Z", None),
    ]
    skip = {"spec": {"cron": "30 2 * * *", "timezone": "America/New_York", "gap": "skip"},
            "count": 2, "after": "2030-03-09T00:00:00Z"}
    skipped = api.post("/v1/schedules:preview", json=skip).json()["items"]
    assert [(i["dst_note"], i["fires"]) for i in skipped] == [(None, True), ("gap_skipped", False)]


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"cron": "61 * * * *"}, "spec.cron"),
        ({"cron": "* * *"}, "spec.cron"),
        ({"cron": "0 0 30 2 *"}, "spec.cron"),  # 30 February: never fires
        ({"cron": "0 0 * * *", "timezone": "Mars/Olympus_Mons"}, "spec.timezone"),
        ({"cron": "0 0 * * *", "timezone": "../etc/passwd"}, "spec.timezone"),
        ({"interval_seconds": 0.5}, "spec.interval_seconds"),
        ({"interval_seconds": 0}, "spec.interval_seconds"),
        ({"interval_seconds": "60"}, "spec.interval_seconds"),
        ({}, "spec.cron"),  # neither cron nor interval
        ({"cron": "0 0 * * *", "interval_seconds": 60}, "spec.cron"),  # both
        ({"cron": "0 0 * * *", "starting": "00:05"}, "spec.starting"),
        ({"interval_seconds": 60, "starting": "24:00"}, "spec.starting"),
        ({"cron": "0 0 * * *", "overlap": "sometimes"}, "spec.overlap"),
        ({"cron": "0 0 * * *", "colour": "red"}, "spec.colour"),
        ({"cron": "0 0 * * *", "end_at": "2001-01-01T00:00:00Z"}, "spec.end_at"),
        ({"cron": "0 0 * * *", "start_at": "2031-01-01T00:00:00Z",
          "end_at": "2030-01-01T00:00:00Z"}, "spec.end_at"),
        ({"cron": "0 0 * * *", "max_runs": 0}, "spec.max_runs"),
        ({"cron": "0 0 * * *", "catchup_rate_per_second": 0}, "spec.catchup_rate_per_second"),
    ],
)
def test_a_bad_spec_is_422_naming_its_field(
    api: httpx.Client, target: TargetServer, spec: dict[str, Any], field: str
) -> None:
    assert fields_of(api.post("/v1/schedules", json=body(target, spec))) == [field]
    assert fields_of(api.post("/v1/schedules:preview", json={"spec": spec})) == [field]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({"request": {"url": "ftp://example.com/"}}, "call.request.url"),
        ({"request": {"url": "https://example.com/", "method": "BREW"}}, "call.request.method"),
        ({"request": {"url": "https://example.com/", "headers": {"Host": "x"}}},
         "call.request.headers"),
        ({"request": {"url": "https://example.com/", "colour": "red"}}, "call.request.colour"),
        ({"request": {"url": "https://example.com/"}, "retry_policy": {"max_attempts": 0}},
         "call.retry_policy.max_attempts"),
        ({"request": {"url": "https://example.com/"},
          "retry_policy": {"initial_backoff_seconds": 60, "max_backoff_seconds": 1}},
         "call.retry_policy.max_backoff_seconds"),
        ({"request": {"url": "https://example.com/"}, "tags": ["x" * 201]}, "call.tags.0"),
        ({}, "call.request"),
    ],
)
def test_a_bad_call_template_is_422_naming_its_field(
    api: httpx.Client, target: TargetServer, call: dict[str, Any], field: str
) -> None:
    answer = api.post("/v1/schedules", json={**body(target), "call": call})
    assert fields_of(answer) == [field]


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"body": "x" * (1024 * 1024 + 1)}, "call.request.body"),
        ({"headers": {"X-Big": "x" * (33 * 1024)}}, "call.request.headers"),
    ],
)
def test_a_call_template_over_the_size_limits_is_413_naming_its_field(
    api: httpx.Client, target: TargetServer, request_fields: dict[str, Any], field: str
) -> None:
    call = {"request": {"url": f"{target.url}/sched", **request_fields}}
    problem = assert_problem(api.post("/v1/schedules", json={**body(target), "call": call}), 413)
    assert [error["field"] for error in problem["errors"]] == [field]


def test_a_bad_name_or_an_unknown_field_is_422_naming_it(
    api: httpx.Client, target: TargetServer
) -> None:
    assert fields_of(api.post("/v1/schedules", json=body(target, name=""))) == ["name"]
    assert fields_of(api.post("/v1/schedules", json=body(target, name="a\x00b"))) == ["name"]
    assert fields_of(api.post("/v1/schedules", json=body(target, colour="red"))) == ["colour"]


def test_another_tenants_schedule_is_404(
    api: httpx.Client,
    make: Callable[..., dict[str, Any]],
    as_tenant: Callable[[str], dict[str, str]],
) -> None:
    schedule = make()
    path = f"/v1/schedules/{schedule['id']}"
    other = as_tenant("sched-other")

    for method, suffix, payload in [
        ("GET", "", None), ("PATCH", "", {"name": "mine"}), ("DELETE", "", None),
        ("POST", "/pause", None), ("POST", "/resume", None), ("POST", "/trigger", None),
        ("POST", "/backfill", {"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"}),
        ("GET", "/preview", None), ("GET", "/fires", None), ("GET", "/events", None),
    ]:
        answer = api.request(method, f"{path}{suffix}", json=payload, headers=other)
        assert_problem(answer, 404)

    assert api.get(path).json()["version"] == schedule["version"]  # untouched
    assert_problem(api.get(f"/v1/schedules/{uuid.uuid4()}"), 404)


# -- history -----------------------------------------------------------------------------------


def test_events_are_the_schedules_history_with_secrets_redacted(
    api: httpx.Client, target: TargetServer
) -> None:
    request = {"url": f"{target.url}/sched", "headers": {"Authorization": "Bearer s3cret-token"}}
    created = api.post("/v1/schedules", json={**body(target), "call": {"request": request}})
    assert created.status_code == 201, created.text
    schedule = created.json()
    path = f"/v1/schedules/{schedule['id']}"
    assert schedule["call"]["request"]["headers"]["Authorization"] == "[REDACTED]"
    api.post(f"{path}/pause")
    api.post(f"{path}/resume")

    answer = api.get(f"{path}/events")

    assert answer.status_code == 200, answer.text
    history = answer.json()
    assert history["schedule_id"] == schedule["id"]
    assert [e["type"] for e in history["items"]] == [
        "Schedule.Created", "Schedule.Paused", "Schedule.Resumed"
    ]
    assert [e["version"] for e in history["items"]] == [1, 2, 3]
    assert "s3cret-token" not in answer.text
    lines = api.get(f"{path}/events", params={"format": "ndjson"}).text.splitlines()
    assert [json.loads(line)["type"] for line in lines] == [e["type"] for e in history["items"]]


def test_events_come_in_keyset_pages_oldest_or_newest_first(
    api: httpx.Client, make: Callable[..., dict[str, Any]]
) -> None:
    schedule = make()
    path = f"/v1/schedules/{schedule['id']}/events"
    for _ in range(2):  # versions 1-5: created, paused, resumed, paused, resumed
        api.post(f"/v1/schedules/{schedule['id']}/pause").raise_for_status()
        api.post(f"/v1/schedules/{schedule['id']}/resume").raise_for_status()

    def pages(**params: Any) -> list[tuple[list[int], int | None]]:
        """Every page, following ``next_cursor``: each one's versions and cursor."""
        found: list[tuple[list[int], int | None]] = []
        more: dict[str, int] = {}
        while True:
            answer = api.get(path, params={**params, **more, "limit": 2})
            assert answer.status_code == 200, answer.text
            page = answer.json()
            cursor = page["next_cursor"]
            found.append(([e["version"] for e in page["items"]], cursor))
            if cursor is None:
                return found
            more = {"cursor": cursor}

    assert pages() == [([1, 2], 2), ([3, 4], 4), ([5], None)]
    assert pages(sort="-version") == [([5, 4], 4), ([3, 2], 2), ([1], None)]
    assert api.get(path, params={"limit": 5}).json()["next_cursor"] is None  # exactly all
    lines = api.get(path, params={"format": "ndjson", "sort": "-version", "limit": 2, "cursor": 5})
    assert [json.loads(line)["version"] for line in lines.text.splitlines()] == [4, 3]
    assert fields_of(api.get(path, params={"limit": 101})) == ["limit"]
    assert fields_of(api.get(path, params={"cursor": 0})) == ["cursor"]
    assert fields_of(api.get(path, params={"sort": "version,-version"})) == ["sort"]
    assert api.get(path, params={"cursor": 2**40}).json()["items"] == []
    far = api.get(path, params={"cursor": 2**40, "sort": "-version", "limit": 2}).json()
    assert ([e["version"] for e in far["items"]], far["next_cursor"]) == ([5, 4], 4)


# -- read-your-writes --------------------------------------------------------------------------


def position_of(answer: httpx.Response) -> int:
    assert answer.is_success, answer.text
    return int(answer.headers["x-duecall-position"])


def test_a_write_answers_with_its_position_and_the_list_given_it_includes_the_write(
    api: httpx.Client, target: TargetServer
) -> None:
    created = api.post("/v1/schedules", json=body(target))
    schedule = created.json()
    path = f"/v1/schedules/{schedule['id']}"

    listed = api.get("/v1/schedules", params={"min_position": position_of(created)}).json()

    assert not listed["meta"]["stale"]
    assert schedule["id"] in [s["id"] for s in listed["items"]]  # at once: no polling
    window = {"start": "2020-01-01T00:00:00Z", "end": "2020-01-01T00:00:00Z"}
    writes = [
        api.patch(path, json={"name": "renamed"}), api.post(f"{path}/pause"),
        api.post(f"{path}/resume"), api.post(f"{path}/trigger"),
        api.post(f"{path}/backfill", json={**window, "dry_run": True}),  # records nothing
        api.post(f"{path}/pause"), api.post(f"{path}/pause"),  # the second changes nothing
        api.delete(path),
    ]
    positions = [w.headers.get("x-duecall-position") for w in writes]
    assert (positions[4], positions[6]) == (None, None)
    recorded = [position_of(w) for i, w in enumerate(writes) if i not in (4, 6)]
    assert sorted(recorded) == recorded
    assert position_of(created) < recorded[0]

    deleted = api.get("/v1/schedules", params={"status": "deleted", "min_position": recorded[-1]})
    assert schedule["id"] in [s["id"] for s in deleted.json()["items"]]


def test_a_triggered_schedule_says_when_in_get_and_list_alike(
    api: httpx.Client, make: Callable[..., dict[str, Any]]
) -> None:
    schedule = make()
    assert schedule["last_triggered_at"] is None
    before = datetime.now(UTC)

    triggered = api.post(f"/v1/schedules/{schedule['id']}/trigger")

    at = triggered.json()["schedule"]["last_triggered_at"]
    assert before - timedelta(seconds=1) <= utc(at) <= datetime.now(UTC)
    assert api.get(f"/v1/schedules/{schedule['id']}").json()["last_triggered_at"] == at
    assert triggered.json()["schedule"]["last_fired_nominal"] is None  # only triggered
    listed = api.get("/v1/schedules", params={"min_position": position_of(triggered)}).json()
    (row,) = [s for s in listed["items"] if s["id"] == schedule["id"]]
    assert utc(row["last_triggered_at"]) == utc(at)
