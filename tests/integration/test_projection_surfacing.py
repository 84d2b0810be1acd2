"""A stuck read model is surfaced: /readyz answers 503 (an unfoldable event, or a lag over
the bound), `duecall projections status` shows its failures, a rebuild reports them, and
/metrics counts them."""

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from infrastructure.container import Container
from interfaces import cli
from interfaces.api.app import create_app
from tests.support.projection_failures import submit, submit_unfoldable
from tests.support.read_models import catch_up
from tests.support.workload import workload_settings


@pytest.fixture
def stuck(rm_container: Container) -> Container:
    """The read models caught up over one event service_calls cannot fold."""
    submit_unfoldable(rm_container, "t-bad")
    submit(rm_container, "t-good")
    catch_up(rm_container)
    return rm_container


def _client(database_url: str, max_lag: float = 60.0) -> TestClient:
    settings = workload_settings(database_url).model_copy(
        update={"readiness_max_lag_seconds": max_lag}
    )
    return TestClient(create_app(settings))


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with _client(database_url) as client:
        yield client


def test_readyz_is_503_while_a_read_model_has_an_event_it_could_not_fold(
    stuck: Container, client: TestClient
) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert "service_calls" in body["detail"]
    assert "InvalidDatetimeFormat" in body["detail"]
    by_name = {p["name"]: p for p in body["projections"]}
    assert by_name["service_calls"]["failures"] == 1
    assert by_name["executions"]["failures"] == 0

    stuck.read_models.rebuild("executions")  # another model's rebuild does not clear it
    assert client.get("/readyz").status_code == 503


def test_readyz_is_503_while_a_read_model_is_further_behind_than_the_bound(
    rm_container: Container, database_url: str
) -> None:
    with _client(database_url, max_lag=0.05) as client:
        submit(rm_container, "t1")
        time.sleep(0.1)
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert "behind" in answer.json()["detail"]
        catch_up(rm_container)
        assert client.get("/readyz").status_code == 200


def test_metrics_count_the_events_a_read_model_could_not_fold(
    stuck: Container, client: TestClient
) -> None:
    text = client.get("/metrics").text
    assert 'duecall_projection_failures{projection="service_calls"} 1.0' in text
    assert 'duecall_projection_failures{projection="executions"} 0.0' in text


def test_the_cli_status_shows_the_failures_and_a_rebuild_says_it_passed_one_over(
    stuck: Container, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    # the logs of the test's process stay where they are (not on CliRunner's stderr, closed after)
    monkeypatch.setattr("interfaces.cli_support.configure_logging", lambda _: None)
    runner = CliRunner()
    status = runner.invoke(cli.app, ["projections", "status", "--json"])
    assert status.exit_code == 0, status.output
    assert '"failures": 1' in status.output
    assert "InvalidDatetimeFormat" in status.output

    rebuilt = runner.invoke(cli.app, ["projections", "rebuild", "service_calls"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "1 event(s) could not be folded" in rebuilt.output

    listed = runner.invoke(cli.app, ["projections", "failures", "service_calls", "--json"])
    assert listed.exit_code == 0, listed.output
    assert '"tenant_id": "t-bad"' in listed.output
