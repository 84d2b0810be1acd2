"""The dashboard's workflow pages over real HTTP against a real `duecall serve` (API and
workers) on a real PostgreSQL, the runs' steps calling a real local target: the run fragment
behind the API key (tenant-scoped, escaped) with its DAG drawn as SVG whose nodes carry the
run's step states; the runs list (filters, pages); the run's events on the live event stream
(only to its tenant); and the pages in a real browser (headless Chromium): a run submitted
through the API appears in the Workflows list, and its page follows it to its end without a
reload.

Each test's tenant is its own, so the session server's other modules never see them.
"""

import html
import itertools
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.api_keys import bearer
from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer
from interfaces.api.dag_layout import node_state
from interfaces.cli_watch import sse_messages
from tests.e2e.test_dashboard import browser, page  # noqa: F401  (its browser fixtures)
from tests.support.problems import assert_problem
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
RUNS = "/v1/workflows/runs"
PART = "/ui/parts/workflows/runs"
LIST = PART
HOSTILE = '"><script>alert(1)</script>'
QUICK = {"max_attempts": 2, "initial_backoff_seconds": 0.05, "max_backoff_seconds": 0.05}


def _tenant(server: DuecallProcess) -> tuple[str, httpx.Client]:
    key = server.tenant_key(f"dash-wf-{uuid.uuid4().hex[:8]}")
    return key, httpx.Client(base_url=server.url, headers=bearer(key), timeout=10.0)


@pytest.fixture
def tenant_api(duecall_server: DuecallProcess) -> Iterator[httpx.Client]:
    _, client = _tenant(duecall_server)
    with client:
        yield client


def _diamond(target: TargetServer, first: str = "/ok") -> dict[str, Any]:
    """``a`` → ``b``, ``c`` → ``d``."""
    def step(step_id: str, needs: list[str], path: str = "/ok") -> dict[str, Any]:
        return {"id": step_id, "needs": needs,
                "request": {"method": "POST", "url": f"{target.url}{path}"}}

    return {"name": f"diamond-{uuid.uuid4().hex[:6]}",
            "steps": [step("a", [], first), step("b", ["a"]), step("c", ["a"]),
                      step("d", ["b", "c"])]}


def _submit(api: httpx.Client, definition: dict[str, Any], **input: Any) -> dict[str, Any]:
    answer = api.post(RUNS, json={"definition": definition, "input": input or None})
    assert answer.status_code == 201, answer.text
    run: dict[str, Any] = answer.json()
    return run


def _finished(api: httpx.Client, run_id: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        run: dict[str, Any] = api.get(f"{RUNS}/{run_id}").json()
        return run if run["status"] in {"succeeded", "failed", "cancelled"} else None

    return wait_until(probe, timeout=30.0, interval=0.1)


def _part(api: httpx.Client, run_id: str) -> str:
    """The run's fragment once the calls' read model has folded the whole log (the steps'
    attempts come from it)."""
    head = api.get("/v1/service-calls", params={"limit": 1}).headers["X-Duecall-Head"]
    answer = api.get(f"{PART}/{run_id}", params={"min_position": head})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    return answer.text


def _node_states(fragment: str) -> dict[str, str]:
    return dict(re.findall(r'<g class="node st-[a-z]+" data-step="([^"]+)" '
                           r'data-state="([a-z]+)"', fragment))


def _expected_states(run: dict[str, Any]) -> dict[str, str]:
    """Each step's node state as the run's API answer says it."""
    compensations = run["compensations"]
    return {step: node_state(s["state"], compensations.get(step, {}).get("state"))
            for step, s in run["steps"].items()}


def test_the_run_fragment_needs_the_api_key(duecall_server: DuecallProcess) -> None:
    path = f"{duecall_server.url}{PART}/{uuid.uuid4()}"
    assert_problem(httpx.get(path), 401)
    assert_problem(httpx.get(path, headers=bearer("dc_x_00_nope")), 401)


def test_a_diamond_run_is_drawn_with_its_steps_states_calls_and_events(
    tenant_api: httpx.Client, target: TargetServer, duecall_server: DuecallProcess
) -> None:
    run = _submit(tenant_api, _diamond(target))
    path = f"{PART}/{run['id']}"
    done = _finished(tenant_api, run["id"])
    assert done["status"] == "succeeded", done

    text = _part(tenant_api, run["id"])

    assert 'id="run-status">succeeded<' in text
    assert f"</span> {done['name']}</h1>" in text
    assert '<div data-count="succeeded"><strong>4</strong>' in text
    assert _node_states(text) == {"a": "succeeded", "b": "succeeded", "c": "succeeded",
                                  "d": "succeeded"}
    edges = set(re.findall(r'data-from="([a-z])" data-to="([a-z])"', text))
    assert edges == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")}
    x = {step: int(v) for step, v in re.findall(r'data-step="([a-z])" data-state="[a-z]+"\s+'
                                                 r'transform="translate\((\d+),', text)}
    assert x["a"] < x["b"] == x["c"] < x["d"]  # layered by dependency depth
    for step in "abcd":  # each node and each row links to the step's call
        call_id = done["steps"][step]["call_id"]
        assert text.count(f'href="/ui/calls/{call_id}"') >= 2
        row = re.search(f'<tr data-step="{step}" data-state="succeeded">(.*?)</tr>', text, re.S)
        assert row, text
        cells = re.findall(r'<td class="num">([^<]*)</td>', row[1])
        assert cells[:3] == ["200", "1", "1"]  # status code, attempts, generation
    events = [html.unescape(e) for e in re.findall(r'<span class="what">([^<]*)', text)]
    assert events[0] == "run succeeded"  # newest first
    assert events[-1] == f"submitted '{done['name']}': 4 steps"
    assert "d started (generation 1) → call " in events
    assert "every event of the run" in text
    assert len(events) == done["version"] == 10  # created, each step's start and end, the run's

    other = _tenant(duecall_server)[1]
    with other:
        assert_problem(other.get(path), 404)
    assert_problem(tenant_api.get(f"{PART}/{uuid.uuid4()}"), 404)
    assert_problem(tenant_api.get(f"{PART}/not-a-uuid"), 422)


def test_a_100_step_run_of_24_branches_is_drawn_without_overlapping_nodes(
    tenant_api: httpx.Client, target: TargetServer
) -> None:
    def step(step_id: str, needs: list[str]) -> dict[str, Any]:
        return {"id": step_id, "needs": needs,
                "request": {"method": "POST", "url": f"{target.url}/ok"}}

    steps = [step("root", [])]
    for b in range(24):
        steps += [step(f"b{b}-s{s}", [f"b{b}-s{s - 1}"] if s else ["root"]) for s in range(4)]
    steps += [step("join", [f"b{b}-s3" for b in range(24)]), step("tail", ["join"]),
              step("end", ["tail"])]
    assert len(steps) == 100  # the default limit
    run = _submit(tenant_api, {"name": "wide", "steps": steps})
    done = _finished(tenant_api, run["id"])
    assert done["status"] == "succeeded", done

    text = _part(tenant_api, run["id"])

    assert _node_states(text) == dict.fromkeys(done["steps"], "succeeded")
    places = re.findall(r'data-state="[a-z]+"\s+transform="translate\((\d+),(\d+)\)"', text)
    assert len(set(places)) == 100  # a cell each: same-sized nodes on a grid never overlap
    size = re.search(r'<rect width="(\d+)" height="(\d+)"', text)
    assert size, text
    width, height = int(size[1]), int(size[2])
    for (x1, y1), (x2, y2) in itertools.combinations([(int(x), int(y)) for x, y in places], 2):
        assert abs(x1 - x2) >= width or abs(y1 - y2) >= height
    assert len({x for x, _ in places}) == 8  # levels: root, 4 per branch, join, tail, end
    assert text.count('<path class="edge"') == 24 * 4 + 24 + 2
    assert "every event of the run" in text  # 202 events: all shown


def test_failed_skipped_cancelled_and_compensated_steps_are_drawn_as_the_run_says(
    tenant_api: httpx.Client, target: TargetServer
) -> None:
    def step(step_id: str, needs: list[str], path: str, **more: Any) -> dict[str, Any]:
        return {"id": step_id, "needs": needs, "retry_policy": QUICK,
                "request": {"method": "POST", "url": f"{target.url}{path}"}, **more}

    undo = {"request": {"method": "POST", "url": f"{target.url}/ok"}}
    definition = {"name": "mixed", "steps": [
        step("a", [], "/ok", compensate=undo),
        step("skip", ["a"], "/ok", when="steps.a.status == 299"),
        step("b", ["a"], "/status/500", on_failure="compensate"),
        step("after-b", ["b"], "/ok"),
    ]}
    run = _submit(tenant_api, definition)

    done = _finished(tenant_api, run["id"])
    text = _part(tenant_api, run["id"])

    assert done["status"] == "failed", done
    states = _node_states(text)
    assert states == _expected_states(done)
    assert states == {"a": "compensated", "skip": "skipped", "b": "failed",
                      "after-b": "cancelled"}
    row = re.search(r'<tr data-step="b" data-state="failed">(.*?)</tr>', text, re.S)
    assert row, text
    assert re.findall(r'<td class="num">([^<]*)</td>', row[1])[:2] == ["500", "2"]
    assert "b failed (500)" in text
    assert "halted_by:b" in text  # the cancelled step's reason
    assert "a compensated (200)" in text
    assert "compensation succeeded" in text  # under a's state in the table


def test_hostile_values_are_escaped_and_a_hostile_step_id_is_refused(
    tenant_api: httpx.Client, target: TargetServer
) -> None:
    definition = _diamond(target, first="/echo")
    definition["steps"][0]["request"]["body"] = {"x": "{{ input.x }}"}
    definition["steps"][0]["outputs"] = {"sent": "$.body.body"}  # the target echoes it back
    run = _submit(tenant_api, definition, x=HOSTILE)
    _finished(tenant_api, run["id"])
    slow = _diamond(target, first="/slow/5")
    running = _submit(tenant_api, slow)
    cancelled = tenant_api.post(f"{RUNS}/{running['id']}/cancel", json={"reason": HOSTILE})
    assert cancelled.status_code == 200, cancelled.text

    for run_id in (run["id"], running["id"]):
        text = tenant_api.get(f"{PART}/{run_id}").text
        assert "<script>" not in text
        assert "&lt;script&gt;" in text or "\\u003cscript\\u003e" in text
    assert "run cancelled: &#34;&gt;&lt;script&gt;" in text  # the reason, as text

    hostile = _diamond(target)
    hostile["steps"][0]["id"] = HOSTILE
    refused = assert_problem(tenant_api.post(RUNS, json={"definition": hostile}), 422)
    assert refused["errors"][0]["field"] == "definition.steps[0].id"


def test_the_run_events_reach_the_event_stream_of_the_runs_tenant_only(
    duecall_server: DuecallProcess, target: TargetServer
) -> None:
    key, api = _tenant(duecall_server)
    other_key, other = _tenant(duecall_server)
    with api, other:
        run = _submit(api, _diamond(target))
        _finished(api, run["id"])
        types = "WorkflowRun.Created,WorkflowRun.StepSucceeded,WorkflowRun.Succeeded"
        seen = _stream(duecall_server, key, {"after": 0, "type": types},
                       until=lambda e: e["type"] == "WorkflowRun.Succeeded")
        assert [e["type"] for e in seen] == [
            "WorkflowRun.Created", *["WorkflowRun.StepSucceeded"] * 4, "WorkflowRun.Succeeded"
        ]
        assert {e["aggregate_id"] for e in seen} == {run["id"]}
        assert {e["aggregate_type"] for e in seen} == {"WorkflowRun"}
        assert seen[1]["payload"]["step"] == "a"

        # the other tenant's stream, from the first event: its own call, never the run
        mine = other.post("/v1/service-calls", json={
            "name": "other", "delay_seconds": 600,
            "request": {"method": "GET", "url": f"{target.url}/ok"}})
        assert mine.status_code == 201, mine.text
        theirs = _stream(duecall_server, other_key, {"after": 0},
                         until=lambda e: e["aggregate_id"] == mine.json()["id"])
        assert not [e for e in theirs if e["aggregate_type"] == "WorkflowRun"]
        assert_problem(api.get("/v1/events/stream", params={"type": "WorkflowRun.Nope"}), 422)


def _stream(
    server: DuecallProcess, key: str, params: dict[str, Any], until: Any
) -> list[dict[str, Any]]:
    """The events of the tenant's stream up to the first that ``until`` accepts."""
    seen: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{server.url}/v1/events/stream", params=params,
                      headers=bearer(key), timeout=httpx.Timeout(20.0)) as answer:
        assert answer.status_code == 200
        for message in sse_messages(answer.iter_lines()):
            if not message.data:
                continue
            seen.append(json.loads("\n".join(message.data)))
            if until(seen[-1]):
                return seen
    raise AssertionError(f"the stream ended first: {seen}")


def test_the_runs_fragment_lists_filters_pages_and_is_the_tenants_only(
    tenant_api: httpx.Client, target: TargetServer, duecall_server: DuecallProcess
) -> None:
    runs = [_submit(tenant_api, _diamond(target)) for _ in range(3)]
    for run in runs:
        _finished(tenant_api, run["id"])
    failing = _diamond(target, first="/status/500")
    failing["steps"][0]["retry_policy"] = {"max_attempts": 1}
    failed = _submit(tenant_api, failing)
    _finished(tenant_api, failed["id"])
    head = tenant_api.get("/v1/service-calls", params={"limit": 1}).headers["X-Duecall-Head"]

    answer = tenant_api.get(LIST, params={"min_position": head})

    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    rows = re.findall(r'<tr data-id="([^"]+)" data-status="([a-z]+)">', answer.text)
    assert rows == [(failed["id"], "failed"), *[(r["id"], "succeeded") for r in runs[::-1]]]
    assert f'href="/ui/workflows/runs/{failed["id"]}"' in answer.text
    assert "halted by a" in answer.text
    only_failed = tenant_api.get(LIST, params={"status": "failed"}).text
    assert failed["id"] in only_failed
    assert runs[0]["id"] not in only_failed
    by_name = tenant_api.get(LIST, params={"name": runs[1]["name"]}).text
    assert re.findall(r'<tr data-id="([^"]+)"', by_name) == [runs[1]["id"]]
    assert "No runs match" in tenant_api.get(LIST, params={"name": HOSTILE}).text

    first = tenant_api.get(LIST, params={"limit": 2}).text
    cursor = re.search(r'data-next-cursor="([^"]+)"', first)
    assert cursor, first
    rest = tenant_api.get(LIST, params={"limit": 2, "cursor": html.unescape(cursor[1])}).text
    assert re.findall(r'<tr data-id="([^"]+)"', rest) == [runs[1]["id"], runs[0]["id"]]
    assert 'data-next-cursor=""' in rest

    other = _tenant(duecall_server)[1]
    with other:
        assert "No runs match" in other.get(LIST).text
    problem = assert_problem(tenant_api.get(LIST, params={"status": "nonsense"}), 422)
    assert problem["errors"][0]["field"] == "status"
    assert_problem(tenant_api.get(LIST, params={"name": "n" * 129}), 422)
    assert_problem(httpx.get(f"{duecall_server.url}{LIST}"), 401)


def test_the_workflows_page_lists_a_run_whose_page_then_updates_live(
    duecall_server: DuecallProcess,
    target: TargetServer,
    page: Any,  # noqa: F811 (the fixture)
) -> None:
    from playwright.sync_api import expect

    key, api = _tenant(duecall_server)
    with api:
        page.goto(f"{duecall_server.url}/ui#key={key}")
        page.get_by_role("link", name="Workflows").click()
        expect(page).to_have_url(re.compile("/ui/workflows$"))
        expect(page.locator("#runs")).to_contain_text("No runs match")
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        # paused while its first step runs: it then holds, a done and the rest pending
        run = _submit(api, _diamond(target, first="/slow/1"))
        assert api.post(f"{RUNS}/{run['id']}/pause").status_code == 200
        row = page.locator(f'tr[data-id="{run["id"]}"]')  # by the stream's events
        expect(row.locator(".badge")).to_have_text("paused")
        wait_until(lambda: api.get(f"{RUNS}/{run['id']}").json()["steps"]["a"]["state"]
                   == "succeeded", timeout=20.0)
        row.get_by_role("link", name=run["name"]).click()
        expect(page).to_have_url(re.compile(f"/ui/workflows/runs/{run['id']}$"))
        expect(page.locator("#run-status")).to_have_text("paused")
        expect(page.locator('g.node[data-step="a"]')).to_have_attribute("data-state", "succeeded")
        expect(page.locator('g.node[data-step="d"]')).to_have_attribute("data-state", "pending")
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        page.evaluate("window.notReloaded = true")
        page.screenshot(path="/tmp/duecall-dashboard-workflow-paused.png", full_page=True)

        # resumed, the run goes on in the workers; the page follows its events on the stream
        assert api.post(f"{RUNS}/{run['id']}/resume").status_code == 200
        expect(page.locator("#run-status")).to_have_text("succeeded")
        assert page.evaluate("window.notReloaded") is True
        done = api.get(f"{RUNS}/{run['id']}").json()
        for step, state in _expected_states(done).items():
            expect(page.locator(f'g.node[data-step="{step}"]')).to_have_attribute(
                "data-state", state)
        expect(page.locator(".timeline")).to_contain_text("run succeeded")
        page.screenshot(path="/tmp/duecall-dashboard-workflow.png", full_page=True)
        page.locator('g.node[data-step="d"] a').click()
        expect(page.locator("#call-status")).to_have_text("succeeded")

        page.get_by_role("link", name="Workflows").click()  # a run opened by its id
        expect(row.locator(".badge")).to_have_text("succeeded")
        page.screenshot(path="/tmp/duecall-dashboard-workflows.png", full_page=True)
        page.get_by_label("Run id").fill(run["id"])
        page.get_by_role("button", name="Open run").click()
        expect(page).to_have_url(re.compile(f"/ui/workflows/runs/{run['id']}$"))
        expect(page.locator("#run-status")).to_have_text("succeeded")
