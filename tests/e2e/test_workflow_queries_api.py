"""Listing workflow runs over real HTTP against a real `duecall serve` (API and workers) on a
real PostgreSQL, the runs' steps calling a real local target: `GET /v1/workflows/runs` filters
by status (repeated or a comma list), name and submit time, pages with a cursor and says how
fresh it is; `GET /v1/workflows/runs/latest` finds a name's newest run (read-your-writes with
`min_position`) and is never taken for a run's id; bad filters are 422s naming the field;
another tenant sees none of it.

The module has a server of its own on a database of its own, so its counts are its runs'.
"""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from harness.databases import fresh_database
from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer
from projections.query import encode_cursor
from projections.schedules import SORTS
from tests.support.problems import assert_problem
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

RUNS = "/v1/workflows/runs"
TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def duecall_server(server_url: str) -> Iterator[DuecallProcess]:
    """This module's server (overrides the e2e conftest's), on a database of its own."""
    with fresh_database(server_url, prefix="duecall_wfq") as url, DuecallProcess(url) as server:
        yield server


def _submit(api: httpx.Client, name: str, *steps: dict[str, Any]) -> tuple[str, int]:
    """The new run's id and the log position of its submit."""
    answer = api.post(RUNS, json={"definition": {"name": name, "steps": list(steps)}})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], int(answer.headers["x-duecall-position"])


def _step(step_id: str, url: str, **more: Any) -> dict[str, Any]:
    return {"id": step_id, "request": {"method": "GET", "url": url}, **more}


def _listed(api: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = api.get(RUNS, params=params)
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


def _ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


@pytest.fixture(scope="module")
def runs(api: httpx.Client, target: TargetServer) -> dict[str, str]:
    """Five runs of the tenant ``default``, oldest first, each ended: three `nightly` that
    succeed (two steps), an `import` that fails, an `export` cancelled while its step runs."""
    ok, fail, slow = f"{target.url}/ok", f"{target.url}/status/500", f"{target.url}/slow/5"
    made = {
        "nightly-1": _submit(api, "nightly", _step("a", ok), _step("b", ok, needs=["a"]))[0],
        "import": _submit(api, "import", _step("a", fail, retry_policy={"max_attempts": 1}),
                          _step("b", ok, needs=["a"]))[0],
        "nightly-2": _submit(api, "nightly", _step("a", ok), _step("b", ok, needs=["a"]))[0],
        "export": _submit(api, "export", _step("a", slow, timeout_seconds=10))[0],
        "nightly-3": _submit(api, "nightly", _step("a", ok), _step("b", ok, needs=["a"]))[0],
    }
    target.wait_for(1, path="/slow/5")
    assert api.post(f"{RUNS}/{made['export']}/cancel").status_code == 200

    def all_ended() -> bool:
        page = _listed(api, limit=100)
        return len(page["items"]) == 5 and {i["status"] for i in page["items"]} <= TERMINAL

    wait_until(all_ended, timeout=30, interval=0.2)
    return made


def test_the_list_is_newest_first_with_counts_durations_and_freshness(
    api: httpx.Client, runs: dict[str, str]
) -> None:
    answer = api.get(RUNS)

    assert answer.status_code == 200, answer.text
    page = answer.json()
    order = ["nightly-3", "export", "nightly-2", "import", "nightly-1"]
    assert _ids(page) == [runs[k] for k in order]
    assert page["next_cursor"] is None
    assert page["meta"]["projection"] == "workflow_runs"
    assert answer.headers["x-duecall-position"] == str(page["meta"]["position"])
    by_id = {item["id"]: item for item in page["items"]}
    nightly, failed, cancelled = (by_id[runs[k]] for k in ("nightly-3", "import", "export"))
    assert (nightly["name"], nightly["status"]) == ("nightly", "succeeded")
    assert nightly["counts"] == {"total": 2, "succeeded": 2, "failed": 0, "skipped": 0,
                                 "cancelled": 0, "running": 0}
    assert nightly["duration_seconds"] > 0
    assert nightly["started_at"] is not None
    assert nightly["finished_at"] >= nightly["started_at"]
    assert (failed["status"], failed["halted_by"]) == ("failed", "a")
    assert (failed["counts"]["failed"], failed["counts"]["cancelled"]) == (1, 1)
    assert (cancelled["status"], cancelled["counts"]["cancelled"]) == ("cancelled", 1)
    assert "tenant_id" not in nightly
    assert "step_states" not in nightly
    # the list agrees with the run as its events make it
    one = api.get(f"{RUNS}/{runs['import']}").json()
    assert {k: v for k, v in failed["counts"].items() if k != "running"} == one["counts"]
    assert failed["duration_seconds"] == pytest.approx(one["duration_seconds"])


def test_filters_by_status_name_and_time_and_pages_with_a_cursor(
    api: httpx.Client, runs: dict[str, str]
) -> None:
    nightly = [runs["nightly-3"], runs["nightly-2"], runs["nightly-1"]]
    assert _ids(_listed(api, status="failed")) == [runs["import"]]
    ended_badly = [runs["export"], runs["import"]]
    assert _ids(_listed(api, status="failed,cancelled")) == ended_badly
    assert _ids(_listed(api, status=["failed", "cancelled"])) == ended_badly
    assert _ids(_listed(api, status="running")) == []
    assert _ids(_listed(api, name="nightly")) == nightly
    assert _ids(_listed(api, name="nightly", status="failed")) == []

    seen: list[str] = []
    cursor = None
    while True:
        page = _listed(api, name="nightly", limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= 2
        seen += _ids(page)
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == nightly

    counted = _listed(api, limit=1, include_total=True)
    assert (len(counted["items"]), counted["total"]) == (1, 5)
    times = {item["id"]: item["created_at"] for item in _listed(api)["items"]}
    middle = times[runs["nightly-2"]]
    assert _ids(_listed(api, created_after=middle)) == [
        runs["nightly-3"], runs["export"], runs["nightly-2"]]
    assert _ids(_listed(api, created_before=middle)) == [runs["import"], runs["nightly-1"]]
    assert _ids(_listed(api, created_after=times[runs["import"]], created_before=middle)) == [
        runs["import"]]


def test_latest_is_a_names_newest_run_and_waits_for_a_write(
    api: httpx.Client, target: TargetServer, runs: dict[str, str]
) -> None:
    answer = api.get(f"{RUNS}/latest", params={"name": "nightly"})
    assert answer.status_code == 200, answer.text
    latest = answer.json()
    assert (latest["id"], latest["status"]) == (runs["nightly-3"], "succeeded")
    assert latest["meta"]["projection"] == "workflow_runs"
    assert api.get(f"{RUNS}/latest", params={"name": "export"}).json()["id"] == runs["export"]

    newer, position = _submit(api, "nightly", _step("a", f"{target.url}/ok"))
    fresh = api.get(f"{RUNS}/latest", params={"name": "nightly", "min_position": position})
    assert fresh.json()["id"] == newer  # read-your-writes: the read model waited for it
    assert fresh.json()["meta"]["stale"] is False
    wait_until(lambda: api.get(f"{RUNS}/{newer}").json()["status"] in TERMINAL, timeout=20)

    missing = assert_problem(api.get(f"{RUNS}/latest", params={"name": "never-ran"}), 404)
    assert "never-ran" in missing["detail"]
    # /latest without a name is a 422 about `name`, not a run id that is not a UUID
    unnamed = assert_problem(api.get(f"{RUNS}/latest"), 422)
    assert [e["field"] for e in unnamed["errors"]] == ["name"]
    assert api.get(f"{RUNS}/{runs['import']}").json()["status"] == "failed"  # ids still work


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "sleeping"}, "status"),
        ({"status": "failed,"}, "status"),
        ({"status": "failed,sleeping"}, "status"),
        ({"name": "no spaces"}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_after": "2030-01-01T00:00:00"}, "created_after"),  # no offset
        ({"created_before": "1700000000"}, "created_before"),
        ({"created_after": "2030-01-02T00:00:00Z", "created_before": "2030-01-01T00:00:00Z"},
         "created_before"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "c" * 513}, "cursor"),
        ({"min_position": 0}, "min_position"),
    ],
)
def test_bad_filters_are_a_422_naming_the_field(
    api: httpx.Client, params: dict[str, Any], field: str
) -> None:
    problem = assert_problem(api.get(RUNS, params=params), 422)
    assert field in [e["field"].split(".")[0] for e in problem["errors"]], problem


def test_a_cursor_from_another_list_is_refused(api: httpx.Client, runs: dict[str, str]) -> None:
    """Only this list's cursors (a schedules' list cursor sorts another way)."""
    schedule_cursor = encode_cursor(SORTS["next_fire"], datetime.now(UTC), uuid.uuid4())
    problem = assert_problem(api.get(RUNS, params={"cursor": schedule_cursor}), 422)
    assert problem["errors"][0]["field"] == "cursor"


def test_another_tenant_sees_none_of_the_runs(
    api: httpx.Client, as_tenant: Any, runs: dict[str, str]
) -> None:
    other = as_tenant(f"wfq-other-{uuid.uuid4().hex[:6]}")

    listed = api.get(RUNS, headers=other)
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == []
    assert_problem(api.get(f"{RUNS}/latest", params={"name": "nightly"}, headers=other), 404)
    assert_problem(api.get(f"{RUNS}/{runs['nightly-1']}", headers=other), 404)
    assert len(_listed(api)["items"]) >= 5  # the owner still sees them
