"""The dashboard's pages and static files: served without a key, and free of tenant data and
secrets (the pages are shells; their script fetches the data with the key kept in the
browser). No database: the app is not started, and the pages do not need it."""

import re

import pytest
from fastapi.testclient import TestClient

from infrastructure.settings import Settings
from interfaces.api.app import create_app

ADMIN_KEY = "admin-key-that-must-not-leak"
SECRET_KEY = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWstMDA="
CALL_ID = "01a22fce-32ea-7201-958b-eee806adb496"
SCHEDULE_ID = "5b0e2c34-7d1f-4c3a-9a51-2f0c6f1d8e47"
RUN_ID = "01a249d4-6375-78fb-9ceb-6eceb4ed9cd6"
PAGES = [
    "/ui",
    "/ui/",
    "/ui/stats",
    f"/ui/calls/{CALL_ID}",
    "/ui/schedules",
    f"/ui/schedules/{SCHEDULE_ID}",
    "/ui/workflows",
    f"/ui/workflows/runs/{RUN_ID}",
]


@pytest.fixture(scope="module")
def client() -> TestClient:
    settings = Settings(
        database_url="postgresql://nowhere.invalid/none", admin_key=ADMIN_KEY, secret_key=SECRET_KEY
    )
    return TestClient(create_app(settings))  # lifespan not entered: no database needed


@pytest.mark.parametrize("path", PAGES)
def test_pages_answer_html_without_a_key(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="/ui/static/app.js" defer></script>' in page.text
    assert 'id="key-form"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_hold_no_secrets_and_no_tenant_data(client: TestClient, path: str) -> None:
    text = client.get(path).text
    assert ADMIN_KEY not in text
    assert SECRET_KEY not in text
    assert not re.search(r"dc_[a-z0-9-]+_[0-9a-f]+_", text)  # no API key
    assert "whsec_" not in text


def test_a_call_page_names_its_call_for_the_script(client: TestClient) -> None:
    text = client.get(f"/ui/calls/{CALL_ID}").text
    assert f'data-part="/ui/parts/calls/{CALL_ID}"' in text
    assert client.get("/ui/calls/not-a-uuid").status_code == 422


def test_a_schedule_page_names_its_schedule_for_the_script(client: TestClient) -> None:
    text = client.get(f"/ui/schedules/{SCHEDULE_ID}").text
    assert f'data-part="/ui/parts/schedules/{SCHEDULE_ID}"' in text
    assert f'data-schedule-id="{SCHEDULE_ID}"' in text
    assert '<body data-page="schedule">' in text
    assert client.get("/ui/schedules/not-a-uuid").status_code == 422


def test_the_schedules_page_has_its_filters_and_the_navigation_links_to_it(
    client: TestClient,
) -> None:
    text = client.get("/ui/schedules").text
    assert 'data-part="/ui/parts/schedules"' in text
    for status in ("active", "paused", "finished", "deleted"):
        assert f'name="status" value="{status}"' in text
    assert '<option value="next_fire">' in text
    assert 'id="next"' in text
    assert '<a href="/ui/schedules" class="on">Schedules</a>' in text
    assert '<a href="/ui/schedules" >Schedules</a>' in client.get("/ui").text


def test_a_run_page_names_its_run_and_the_navigation_links_to_the_workflows(
    client: TestClient,
) -> None:
    text = client.get(f"/ui/workflows/runs/{RUN_ID}").text
    assert f'data-part="/ui/parts/workflows/runs/{RUN_ID}"' in text
    assert f'data-run-id="{RUN_ID}"' in text
    assert '<body data-page="workflow_run">' in text
    assert '<a href="/ui/workflows" class="on">Workflows</a>' in text
    assert client.get("/ui/workflows/runs/not-a-uuid").status_code == 422
    assert '<a href="/ui/workflows" >Workflows</a>' in client.get("/ui").text
    runs = client.get("/ui/workflows").text
    assert 'id="open-run"' in runs
    assert 'data-part="/ui/parts/workflows/runs"' in runs
    for status in ("pending", "running", "compensating", "succeeded", "failed", "cancelled"):
        assert f'name="status" value="{status}"' in runs


@pytest.mark.parametrize(
    ("path", "kind"),
    [("/ui/static/app.js", "javascript"), ("/ui/static/app.css", "text/css")],
)
def test_static_files_are_served(client: TestClient, path: str, kind: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 200
    assert kind in answer.headers["content-type"]
    assert len(answer.content) > 1000
    assert client.get("/ui/static/missing.js").status_code == 404


def test_the_pages_are_not_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/ui")]
