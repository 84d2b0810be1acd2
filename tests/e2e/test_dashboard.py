"""The dashboard: its fragments behind the API key (tenant-scoped, escaped, secrets
redacted), and the whole of it in a real browser (headless Chromium): a call submitted through
the API appears in the list and turns succeeded without a reload; its page shows the attempt
and the timeline; the stats page draws its charts."""

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from harness.api_keys import bearer
from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer
from tests.support.browser import headless_chromium
from tests.support.problems import assert_problem

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SCREENSHOT = "/tmp/duecall-dashboard.png"
WAIT_MS = 20_000  # generous: the expects below return as soon as the page gets there


def _submit(api: httpx.Client, **call: Any) -> tuple[str, int]:
    """Submit; the call's id and the log position of its events."""
    answer = api.post("/v1/service-calls", json=call)
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], int(answer.headers["X-Duecall-Position"])


def test_fragments_need_the_api_key(duecall_server: DuecallProcess) -> None:
    for path in ("/ui/parts/calls", "/ui/parts/calls/01a22fce-32ea-7201-958b-eee806adb496"):
        answer = httpx.get(f"{duecall_server.url}{path}")
        assert_problem(answer, 401)
        answer = httpx.get(f"{duecall_server.url}{path}", headers=bearer("dc_x_00_nope"))
        assert_problem(answer, 401)


def test_the_calls_fragment_lists_filters_and_escapes(
    api: httpx.Client, target: TargetServer, as_tenant: Callable[[str], dict[str, str]]
) -> None:
    name = "<img src=x onerror=alert(1)>"
    call_id, position = _submit(api, name=name, delay_seconds=600, tags=["<b>t</b>"],
                                request={"method": "GET", "url": f"{target.url}/ok"})
    rows = api.get("/ui/parts/calls", params={"min_position": position, "name": name})
    assert rows.status_code == 200
    assert rows.headers["content-type"].startswith("text/html")
    assert rows.headers["cache-control"] == "no-store"
    assert f'data-id="{call_id}" data-status="scheduled"' in rows.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in rows.text
    assert "<img" not in rows.text
    assert "<b>t</b>" not in rows.text

    other = api.get("/ui/parts/calls", params={"min_position": position, "status": "failed",
                                               "name": name})
    assert call_id not in other.text
    assert "No calls match" in other.text
    elsewhere = api.get("/ui/parts/calls", headers=as_tenant("dashboard-other"))
    assert call_id not in elsewhere.text
    assert_problem(api.get("/ui/parts/calls", params={"status": "nonsense"}), 422)


def test_the_call_fragment_shows_the_call_redacted_and_only_to_its_tenant(
    api: httpx.Client, target: TargetServer, as_tenant: Callable[[str], dict[str, str]]
) -> None:
    secret = "s3cret-token-value"
    call_id, _ = _submit(api, name="fragment", delay_seconds=600, request={
        "method": "POST", "url": f"{target.url}/ok", "body": "<script>alert(1)</script>",
        "headers": {"Authorization": f"Bearer {secret}", "X-Token": "tok-42"},
        "secret_headers": ["X-Token"]})
    part = api.get(f"/ui/parts/calls/{call_id}")
    assert part.status_code == 200
    assert 'id="call-status">scheduled<' in part.text
    assert "[REDACTED]" in part.text
    assert secret not in part.text
    assert "tok-42" not in part.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in part.text
    assert "<script>" not in part.text
    assert "attempt 1 due" in part.text  # the timeline
    assert "No attempt yet." in part.text
    assert_problem(api.get(f"/ui/parts/calls/{call_id}", headers=as_tenant("dashboard-other")),
                   404)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"errors in the page's script: {errors}"


def test_a_call_appears_turns_succeeded_live_and_shows_its_timeline(
    duecall_server: DuecallProcess, target: TargetServer, page: Any
) -> None:
    from playwright.sync_api import expect

    key = duecall_server.tenant_key("dashboard")
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    page.goto(f"{duecall_server.url}/ui#key={key}")
    expect(page.locator("#calls table")).to_be_visible()
    assert key not in page.url  # taken out of the address bar, kept in the browser
    expect(page.locator("#live")).to_have_attribute("data-state", "live")  # the event stream
    page.evaluate("window.notReloaded = true")

    submitted = httpx.post(
        f"{duecall_server.url}/v1/service-calls", headers=bearer(key), timeout=10.0,
        json={"name": "ui-e2e", "delay_seconds": 2, "tags": ["browser"],
              "request": {"method": "GET", "url": f"{target.url}/ok"}},
    )
    assert submitted.status_code == 201, submitted.text
    call_id = submitted.json()["id"]

    row = page.locator(f'tr[data-id="{call_id}"]')
    expect(row).to_be_visible()
    expect(row.locator(".badge")).to_have_text("succeeded")
    assert page.evaluate("window.notReloaded") is True  # updated in place
    # by the stream's events: each refresh asks for the read model to have folded the event
    assert any("/ui/parts/calls?" in url and "min_position=" in url for url in fetched)
    assert page.locator("#live").get_attribute("data-state") == "live"
    page.screenshot(path=SCREENSHOT.replace(".png", "-list.png"), full_page=True)

    row.get_by_role("link", name="ui-e2e").click()
    expect(page).to_have_url(re.compile(f"/ui/calls/{call_id}$"))
    expect(page.locator("#call-status")).to_have_text("succeeded")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    attempt = page.locator('.attempt[data-attempt="1"]')
    expect(attempt).to_contain_text("200")
    expect(attempt).to_contain_text("succeeded")
    timeline = page.locator(".timeline")
    expect(timeline).to_contain_text("submitted 'ui-e2e': GET")
    expect(timeline).to_contain_text("attempt 1 due")
    expect(timeline).to_contain_text(f"→ GET {target.url}/ok")
    expect(timeline).to_contain_text("← 200 in")
    expect(timeline).to_contain_text("succeeded on attempt 1 (200")
    expect(timeline.locator("li")).to_have_count(5)
    attempt.locator("summary").click()
    expect(attempt).to_contain_text(f"Idempotency-Key: {call_id}:1")
    expect(attempt).to_contain_text("content-type")  # the response's headers
    expect(attempt).to_contain_text('{"ok": true}')
    page.screenshot(path=SCREENSHOT, full_page=True)

    page.get_by_role("link", name="Stats").click()
    expect(page.locator("#chart-throughput svg rect.bar").first).to_be_attached()
    expect(page.locator("#chart-latency svg path.line").first).to_be_attached()
    page.screenshot(path=SCREENSHOT.replace(".png", "-stats.png"), full_page=True)


def test_without_a_key_the_dashboard_asks_for_one(
    duecall_server: DuecallProcess, page: Any
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{duecall_server.url}/ui")
    form = page.locator("#key-form")
    expect(form).to_be_visible()
    form.locator("input[name=key]").fill("dc_nobody_00_wrong")
    form.get_by_role("button").click()
    expect(page.locator("#key-error")).to_contain_text("not valid")
    expect(page.locator("#main")).to_be_hidden()
