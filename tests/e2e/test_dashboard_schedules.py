"""The dashboard's schedule pages over real HTTP against a real `duecall serve` on a real
PostgreSQL: the fragments behind the API key (tenant-scoped, escaped, secrets redacted), and
the pages in a real browser (headless Chromium): a schedule created through the API is in the
list, its page shows its spec and next fire times with their DST notes, and a trigger's fire
appears there without a reload and links to its call.

The schedules fire on the second Sunday of March at 02:30 New York time, a wall time that does
not exist (DST starts at 02:00): every fire time has a DST note, and none comes while a test
runs. Each test's tenant is its own, so the session server's other modules never see them.
"""

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from harness.api_keys import bearer
from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer
from tests.e2e.test_dashboard import browser, page  # noqa: F401  (its browser fixtures)
from tests.support.problems import assert_problem
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SPRING_GAP = {
    "cron": "30 2 * 3 SUN#2",
    "timezone": "America/New_York",
    "gap": "shift",
    "overlap": "buffer_one",
    "on_missed": "latest",
}
HOSTILE = "<script>alert(1)</script>"
LIST = "/ui/parts/schedules"
UNKNOWN_ID = "5b0e2c34-7d1f-4c3a-9a51-2f0c6f1d8e47"


@pytest.fixture
def tenant_api(duecall_server: DuecallProcess) -> Iterator[httpx.Client]:
    """A client of a tenant of this test's own (no other test's schedules in its lists)."""
    key = duecall_server.tenant_key(f"dash-sched-{uuid.uuid4().hex[:8]}")
    with httpx.Client(base_url=duecall_server.url, headers=bearer(key), timeout=10.0) as client:
        yield client


def _create(api: httpx.Client, target: TargetServer, name: str, **call: Any) -> dict[str, Any]:
    request = {"method": "POST", "url": f"{target.url}/ok", **call}
    answer = api.post(
        "/v1/schedules",
        json={"name": name, "spec": SPRING_GAP, "call": {"request": request, "tags": ["ui"]}},
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _part_once(api: httpx.Client, path: str, has: str, **params: str) -> str:
    """The fragment at ``path`` once it holds ``has`` (the list's read model folds after the
    write; a fire's outcome comes back after its call is made)."""

    def probe() -> str | None:
        text = api.get(path, params=params).text
        return text if has in text else None

    return wait_until(probe, timeout=20.0)


def test_schedule_fragments_need_the_api_key(duecall_server: DuecallProcess) -> None:
    for path in ("/ui/parts/schedules", f"/ui/parts/schedules/{UNKNOWN_ID}"):
        assert_problem(httpx.get(f"{duecall_server.url}{path}"), 401)
        answer = httpx.get(f"{duecall_server.url}{path}", headers=bearer("dc_x_00_nope"))
        assert_problem(answer, 401)


def test_the_schedules_fragment_lists_filters_and_escapes(
    tenant_api: httpx.Client, target: TargetServer, as_tenant: Callable[[str], dict[str, str]]
) -> None:
    schedule = _create(tenant_api, target, HOSTILE)
    rows = _part_once(tenant_api, LIST, schedule["id"], name=HOSTILE)
    assert f'data-id="{schedule["id"]}" data-status="active"' in rows
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rows
    assert "<script>" not in rows
    assert "<code>30 2 * 3 SUN#2</code>" in rows
    assert "America/New_York" in rows
    assert f'href="/ui/schedules/{schedule["id"]}"' in rows

    answer = tenant_api.get(LIST, params={"status": "paused"})
    assert answer.headers["cache-control"] == "no-store"
    assert schedule["id"] not in answer.text
    assert "No schedules match" in answer.text
    assert "No schedules match" in tenant_api.get(LIST, params={"name": "no-such-name"}).text
    tenant_api.post(f"/v1/schedules/{schedule['id']}/pause").raise_for_status()
    paused = _part_once(tenant_api, LIST, schedule["id"], status="paused")
    assert f'data-id="{schedule["id"]}" data-status="paused"' in paused

    elsewhere = tenant_api.get(LIST, headers=as_tenant("dashboard-other"))
    assert schedule["id"] not in elsewhere.text
    assert_problem(tenant_api.get(LIST, params={"status": "nonsense"}), 422)


def test_the_schedules_fragment_pages(tenant_api: httpx.Client, target: TargetServer) -> None:
    ids = [_create(tenant_api, target, f"paged-{n}")["id"] for n in range(3)]
    _part_once(tenant_api, LIST, ids[-1])
    first = tenant_api.get(LIST, params={"limit": 2}).text
    cursor = re.search(r'data-next-cursor="([^"]+)"', first)
    assert cursor, first
    rest = tenant_api.get(LIST, params={"limit": 2, "cursor": cursor[1]}).text
    assert first.index(ids[2]) < first.index(ids[1])  # newest first
    assert ids[0] not in first
    assert ids[0] in rest
    assert 'data-next-cursor=""' in rest


def test_the_schedule_fragment_shows_spec_preview_redacted_call_and_a_triggered_fire(
    tenant_api: httpx.Client, target: TargetServer, as_tenant: Callable[[str], dict[str, str]]
) -> None:
    schedule = _create(
        tenant_api,
        target,
        HOSTILE,
        body=HOSTILE,
        headers={"X-Token": "tok-42"},
        secret_headers=["X-Token"],
    )
    path = f"/ui/parts/schedules/{schedule['id']}"
    part = tenant_api.get(path)
    assert part.status_code == 200
    assert part.headers["cache-control"] == "no-store"
    text = part.text
    assert 'id="schedule-status">active<' in text
    assert "<script>" not in text
    assert "</span> &lt;script&gt;alert(1)&lt;/script&gt;</h1>" in text  # the name
    assert '<pre class="body">&lt;script&gt;alert(1)&lt;/script&gt;</pre>' in text
    assert "[REDACTED]" in text
    assert "tok-42" not in text
    for fact in ("<dd>shift</dd>", "<dd>first</dd>", "<dd>latest</dd>", "<dd>buffer_one</dd>"):
        assert fact in text  # the DST policy, missed fires, overlap
    assert text.count("gap_shifted</span>") == 10  # the next 10 fire times, each in the gap
    assert "03:30:00 EDT" in text  # shifted by the gap's hour, on New York's clock
    assert "No fire yet." in text

    triggered = tenant_api.post(f"/v1/schedules/{schedule['id']}/trigger")
    assert triggered.status_code == 201, triggered.text
    call_id = triggered.json()["call"]["id"]
    text = tenant_api.get(path).text
    assert f'href="/ui/calls/{call_id}"' in text
    assert "triggered by hand" in text
    assert '<div data-count="triggered"><strong>1</strong>' in text
    # the call is made and its outcome comes back to the schedule
    text = _part_once(tenant_api, path, "its call succeeded")
    fire = re.search(f'<tr data-call-id="{call_id}">(.*?)</tr>', text, re.S)
    assert fire, text
    assert 's-succeeded">succeeded<' in fire[1]
    assert ">trigger<" in fire[1]

    assert_problem(tenant_api.get(path, headers=as_tenant("dashboard-other")), 404)
    assert_problem(tenant_api.get(f"/ui/parts/schedules/{UNKNOWN_ID}"), 404)


def test_the_schedule_fragment_shows_the_newest_50_events_of_a_long_history(
    tenant_api: httpx.Client, target: TargetServer
) -> None:
    schedule = _create(tenant_api, target, "long-history")
    for _ in range(26):  # 53 events: created, then paused and resumed 26 times
        tenant_api.post(f"/v1/schedules/{schedule['id']}/pause").raise_for_status()
        tenant_api.post(f"/v1/schedules/{schedule['id']}/resume").raise_for_status()

    text = tenant_api.get(f"/ui/parts/schedules/{schedule['id']}").text

    assert "the newest 50 of 53" in text
    shown = [int(v) for v in re.findall(r'<span class="who">v(\d+)</span>', text)]
    assert shown == list(range(53, 3, -1))  # newest first, read as one page of 50


def test_a_schedule_is_listed_filtered_and_its_page_shows_a_fire_live(
    duecall_server: DuecallProcess,
    target: TargetServer,
    page: Any,  # noqa: F811 (the fixture)
) -> None:
    from playwright.sync_api import expect

    key = duecall_server.tenant_key(f"dash-sched-{uuid.uuid4().hex[:8]}")
    with httpx.Client(base_url=duecall_server.url, headers=bearer(key), timeout=10.0) as api:
        schedule = _create(api, target, HOSTILE)
        _part_once(api, LIST, schedule["id"])  # in the read model before the page looks
        dialogs: list[str] = []  # an alert(1) run from the name would open one

        def on_dialog(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.goto(f"{duecall_server.url}/ui#key={key}")
        page.get_by_role("link", name="Schedules").click()
        expect(page).to_have_url(re.compile("/ui/schedules$"))
        row = page.locator(f'tr[data-id="{schedule["id"]}"]')
        expect(row.locator(".badge")).to_have_text("active")
        expect(row).to_contain_text("30 2 * 3 SUN#2")
        page.locator("label.chip", has_text="paused").click()  # a filter: not paused
        expect(page.locator("#schedules")).to_contain_text("No schedules match")
        page.locator("label.chip", has_text="paused").click()
        expect(row).to_be_visible()
        page.screenshot(path="/tmp/duecall-dashboard-schedules.png", full_page=True)

        row.get_by_role("link", name=HOSTILE).click()  # the name shown as text, not run
        expect(page).to_have_url(re.compile(f"/ui/schedules/{schedule['id']}$"))
        expect(page.locator("#schedule-status")).to_have_text("active")
        expect(page.locator("table.preview tbody tr")).to_have_count(10)
        expect(page.locator("table.preview")).to_contain_text("03:30:00 EDT")
        expect(page.locator("#spec")).to_contain_text("buffer_one")
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        page.evaluate("window.notReloaded = true")

        triggered = api.post(f"/v1/schedules/{schedule['id']}/trigger")
        assert triggered.status_code == 201, triggered.text
        call_id = triggered.json()["call"]["id"]
    fire = page.locator(f'tr[data-call-id="{call_id}"]')
    expect(fire.locator(".badge")).to_have_text("succeeded")  # by the stream's events
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path="/tmp/duecall-dashboard-schedule.png", full_page=True)
    fire.get_by_role("link", name=call_id).click()
    expect(page.locator("#call-status")).to_have_text("succeeded")
    assert not dialogs


def test_an_unknown_schedule_shows_the_dashboards_not_found(
    duecall_server: DuecallProcess,
    page: Any,  # noqa: F811 (the fixture)
) -> None:
    from playwright.sync_api import expect

    key = duecall_server.tenant_key("dash-sched-unknown")
    page.goto(f"{duecall_server.url}/ui/schedules/{UNKNOWN_ID}#key={key}")
    expect(page.locator("#error")).to_contain_text(f"schedule {UNKNOWN_ID} not found")
    expect(page.locator("#schedule")).to_be_empty()
