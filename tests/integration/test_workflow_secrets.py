"""Secret workflow values through the real pipeline and API: a token a step's response issues
(a secret output) and a password in the run's input (``secret_input``) reach the target in
secret headers, and nothing recorded (the raw event bytes, the outbox) or answered (the run,
its calls, their executions and events) holds them. And a step's whole-step timeout message
is withdrawn in the transaction that records the step's end."""

import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.cryptography import AESCipher
from fastapi.testclient import TestClient

from application.schedules import CreateSchedule
from domain.schedule_spec import ScheduleSpec
from harness.target_server import TargetServer
from infrastructure.container import Container
from infrastructure.settings import Settings
from interfaces.api.app import create_app
from tests.support.waiting import wait_until

TENANT = "t-secrets"
PASSWORD = "pw-7c1d9e2f4a6b8c0d"


def _definition(url: str) -> dict[str, Any]:
    return {
        "name": "secret-token",
        "secret_input": ["password"],
        "steps": [
            {"id": "auth", "timeout_seconds": 300,
             "request": {"method": "POST", "url": f"{url}/token",
                         "headers": {"X-Password": "{{ input.password }}"},
                         "secret_headers": ["x-password"]},
             "outputs": {"token": {"path": "$.body.token", "secret": True},
                         "expires_in": "$.body.expires_in"}},
            {"id": "charge", "needs": ["auth"],
             "request": {"method": "POST", "url": f"{url}/charge",
                         "headers": {"Authorization": "Bearer {{ steps.auth.outputs.token }}"},
                         "body": {"expires_in": "{{ steps.auth.outputs.expires_in }}"}}},
        ],
    }


@pytest.fixture
def client(settings: Settings, clean_database: str) -> Iterator[TestClient]:
    """The API with its workers in the same process, a real secret key, a tenant's key."""
    keyed = settings.model_copy(update={"secret_key": AESCipher.create_key(32)})
    with TestClient(create_app(keyed, with_workers=True)) as client:
        container = client.app.state.container  # type: ignore[attr-defined]
        key = container.tenants.create(TENANT).key
        client.headers.update({"Authorization": f"Bearer {key}"})
        yield client


def _json(client: TestClient, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def _scalar(url: str, query: str, *params: object) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()
        assert row is not None
        return row[0]


def test_secret_values_reach_the_target_and_nothing_recorded_or_answered_holds_them(
    client: TestClient, clean_database: str
) -> None:
    with TargetServer() as target:
        created = client.post(
            "/v1/workflows/runs",
            json={"definition": _definition(target.url), "input": {"password": PASSWORD}},
        )
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        run = wait_until(
            lambda: (r := _json(client, f"/v1/workflows/runs/{run_id}"))["status"]
            in ("succeeded", "failed") and r,
            timeout=20,
        )
        [token] = target.issued_tokens
        [auth] = target.requests_for("/token")
        [charge] = target.requests_for("/charge")

    assert run["status"] == "succeeded", run
    assert auth.headers["x-password"] == PASSWORD  # opened to send, and only then
    assert charge.headers["authorization"] == f"Bearer {token}"
    assert charge.json() == {"expires_in": 3600}  # a plain output, as it was

    # the raw bytes of every stored event, and every outbox row left
    states = b"\n".join(
        bytes(row[0]) for row in psycopg.connect(clean_database).execute(
            "SELECT state FROM duecall_events"
        )
    )
    assert states.count(b"enc:v1:") >= 4  # password, token, the response, the header
    for secret in (token, PASSWORD):
        assert secret.encode() not in states
        assert _scalar(
            clean_database,
            "SELECT count(*) FROM duecall_outbox WHERE payload::text LIKE %s",
            f"%{secret}%",
        ) == 0

    # what the API answers: the run, its steps' calls, their executions and events
    output = run["steps"]["auth"]["outputs"]["token"]
    assert (output["value"], output["secret"]) == ("[REDACTED]", True)
    assert run["input"] == {"password": "[REDACTED]"}
    answers = [run]
    for step in ("auth", "charge"):
        call_id = run["steps"][step]["call_id"]
        answers.append(_json(client, f"/v1/service-calls/{call_id}"))
        answers.append(_json(client, f"/v1/service-calls/{call_id}/executions"))
        answers.append(_json(client, f"/v1/service-calls/{call_id}/events"))
    answers.append(_json(client, f"/v1/workflows/runs/{run_id}"))
    for answer in answers:
        text = str(answer)
        assert token not in text
        assert PASSWORD not in text
    [execution] = _json(client, f"/v1/service-calls/{run['steps']['auth']['call_id']}/executions")[
        "items"
    ]
    assert execution["body_snippet"] == "[REDACTED]"  # recorded sealed
    recorded = _json(client, f"/v1/service-calls/{run['steps']['charge']['call_id']}")
    assert recorded["request"]["headers"]["Authorization"] == "[REDACTED]"

    # the auth step's timeout (300 s away) went with the step's end, not at its deadline
    assert _scalar(
        clean_database,
        "SELECT count(*) FROM duecall_outbox WHERE service_call_id = %s",
        UUID(run_id),
    ) == 0


def test_a_secret_in_a_plain_place_is_refused_naming_the_step_and_field(
    client: TestClient,
) -> None:
    definition = _definition("https://x.example")
    definition["steps"][1]["request"]["url"] = (
        "https://x.example/c?t={{ steps.auth.outputs.token }}"
    )
    response = client.post("/v1/workflows/runs", json={"definition": definition})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "definition.steps[charge].request.url"
    assert "only a secret header may use it" in error["message"]


def _timeout_rows(url: str, run_id: UUID) -> int:
    count: int = _scalar(
        url,
        "SELECT count(*) FROM duecall_outbox WHERE service_call_id = %s "
        "AND payload ? 'timeout' AND payload ? 'withdraw_key'",
        run_id,
    )
    return count


def test_a_fast_steps_long_timeout_leaves_no_outbox_row(
    container: Container, clean_database: str
) -> None:
    with TargetServer() as target:
        definition = {"name": "quick", "steps": [
            {"id": "a", "timeout_seconds": 3600, "request": {"method": "GET",
                                                             "url": f"{target.url}/ok"}},
        ]}
        run_id = container.workflows.submit(TENANT, definition, None).run.id
        assert _timeout_rows(clean_database, run_id) == 1  # published with the step's call
        container.start_workers()
        wait_until(lambda: container.workflows.get(TENANT, run_id).is_terminal, timeout=15)
        # the step's outcome and the withdrawal are one transaction: gone at once
        assert _timeout_rows(clean_database, run_id) == 0
        assert _scalar(
            clean_database, "SELECT count(*) FROM duecall_outbox WHERE service_call_id = %s",
            run_id,
        ) == 0


def test_a_cancelled_runs_step_timeouts_are_withdrawn_with_the_cancel(
    container: Container, clean_database: str
) -> None:
    with TargetServer() as target:
        definition = {"name": "slow", "steps": [
            {"id": "a", "timeout_seconds": 3600,
             "request": {"method": "GET", "url": f"{target.url}/slow/3", "timeout_seconds": 10}},
        ]}
        run_id = container.workflows.submit(TENANT, definition, None).run.id
        container.start_workers()
        target.wait_for(1, path="/slow/3", timeout=10)
        assert _timeout_rows(clean_database, run_id) == 1
        container.workflows.cancel(TENANT, run_id, "no longer wanted")
        assert _timeout_rows(clean_database, run_id) == 0
        time.sleep(0.1)


def test_a_schedules_runs_get_their_secret_input_sealed_from_the_schedules_own_events(
    container: Container, clean_database: str
) -> None:
    with TargetServer() as target:
        definition = {
            "name": "nightly-secret",
            "secret_input": ["password"],
            "steps": [{"id": "a", "request": {
                "method": "GET", "url": f"{target.url}/ok",
                "headers": {"X-Password": "{{ input.password }}"},
                "secret_headers": ["x-password"]}}],
        }
        template = {"workflow": {"definition": definition, "input": {"password": PASSWORD}}}
        schedule = container.schedules.create(CreateSchedule(
            TENANT, "secret-runs", template, ScheduleSpec.from_dict({"interval_seconds": 1})
        )).schedule
        container.start_workers()
        [received] = target.wait_for(1, path="/ok", timeout=15)
        container.schedules.pause(TENANT, schedule.id)

    assert received.headers["x-password"] == PASSWORD  # each run opens it to send
    states = b"\n".join(
        bytes(row[0]) for row in psycopg.connect(clean_database).execute(
            "SELECT state FROM duecall_events"
        )
    )
    assert PASSWORD.encode() not in states  # neither the schedule's events nor its runs'
