"""The live workers, as the admin API, the CLI and /metrics show them: this process's workers
(started by the app) beat, and are listed with their pid; once stopped, they are gone."""

import json
import os
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from infrastructure.settings import Settings
from interfaces import cli
from interfaces.api.app import create_app
from tests.support.problems import assert_problem
from tests.support.waiting import wait_until

ADMIN = {"Authorization": "Bearer the-admin-key"}


def _listed(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/v1/admin/workers", headers=ADMIN)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_the_workers_are_listed_by_the_api_the_cli_and_metrics(
    settings: Settings, clean_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = settings.model_copy(update={"admin_key": "the-admin-key"})
    monkeypatch.setenv("DATABASE_URL", clean_database)
    monkeypatch.setattr("interfaces.cli_support.configure_logging", lambda _: None)
    with TestClient(create_app(configured, with_workers=True)) as client:
        assert_problem(client.get("/v1/admin/workers"), 401)
        [worker] = wait_until(lambda: _listed(client), timeout=10)
        assert (worker["pid"], worker["in_flight"]) == (os.getpid(), 0)
        assert worker["silent_seconds"] < configured.worker_dead_after_seconds
        assert "duecall_workers 1.0" in client.get("/metrics").text

        shown = CliRunner().invoke(cli.app, ["workers", "--json"])
        assert shown.exit_code == 0, shown.output
        assert [w["id"] for w in json.loads(shown.output)] == [worker["id"]]

    # stopped gracefully: it left
    gone = CliRunner().invoke(cli.app, ["workers"])
    assert gone.exit_code == 0, gone.output
    assert "no live workers" in gone.output
