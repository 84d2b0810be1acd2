"""End to end: secret header values reach the target in clear and nothing else.

A call with ``Authorization: Bearer s3cret-XYZ`` and ``X-Custom-Token: tok-123`` (listed in
``secret_headers``), and a batch-submitted one with a listed secret of its own, run against a
real target through a real `duecall serve`; then every way out (API answers, history, export,
the server's log) and every table of the database is searched for the secrets.
"""

import json
import uuid
from collections.abc import Callable
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest
from psycopg import sql

from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer
from infrastructure.schema import EVENTS_TABLE, IDEMPOTENCY_TABLE, OUTBOX_TABLE
from projections.executions import TABLE as EXECUTIONS_READ_MODEL
from projections.service_calls import TABLE as CALLS_READ_MODEL
from tests.support.db_queries import outbox_rows
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

BEARER = "Bearer s3cret-XYZ"
TOKEN = "tok-123"
BATCH_SECRET = "batch-secret-789"
SECRETS = ("s3cret-XYZ", TOKEN, BATCH_SECRET)


def _status(api: httpx.Client, call_id: str) -> str:
    status: str = api.get(f"/v1/service-calls/{call_id}").json()["status"]
    return status


def _succeeded(api: httpx.Client, call_id: str) -> Callable[[], bool]:
    return lambda: _status(api, call_id) == "succeeded"


def _body(path: str, key: str) -> dict[str, Any]:
    return {
        "name": "secret-headers",
        "request": {
            "url": path,
            "headers": {"Authorization": BEARER, "X-Custom-Token": TOKEN, "X-Trace": "t-1"},
            "secret_headers": ["x-custom-token"],
        },
        "tags": [key],
    }


def _execute_payloads(url: str, call_id: str) -> list[Any]:
    return [row[-1] for row in outbox_rows(url, UUID(call_id), ("kind", "payload"))
            if row[0] == "execute"]


@pytest.fixture(scope="module")
def calls(
    api: httpx.Client, target: TargetServer, duecall_server: DuecallProcess
) -> dict[str, Any]:
    """Two calls, once both succeeded: one to a slow path (so its ``execute`` message, which
    carries the request, is caught in the outbox while the attempt is in flight), one
    batch-submitted to a path that echoes the request's headers back."""
    path = "/slow/1.5"  # only this module's tests use this target
    key = uuid.uuid4().hex
    body = _body(f"{target.url}{path}?k={key}", key)
    submitted = api.post("/v1/service-calls", json=body, headers={"Idempotency-Key": key})
    assert submitted.status_code == 201, submitted.text
    call_id = submitted.json()["id"]
    in_flight = wait_until(
        lambda: _execute_payloads(duecall_server.database_url, call_id), timeout=10
    )
    batch_path = "/echo"
    batch = api.post("/v1/service-calls:batch", json={"calls": [{
        "request": {"url": f"{target.url}{batch_path}",
                    "headers": {"X-Batch-Secret": BATCH_SECRET},
                    "secret_headers": ["X-Batch-Secret"]},
    }]})
    assert batch.status_code == 201, batch.text
    batch_id = batch.json()["items"][0]["id"]
    for each in (call_id, batch_id):
        wait_until(_succeeded(api, each), timeout=20)
    return {
        "id": call_id, "batch_id": batch_id, "path": path, "batch_path": batch_path,
        "key": key, "submitted": submitted, "execute_payload": in_flight[0],
        "body": body,
    }


def _assert_no_secret(text: str | bytes, where: str) -> None:
    data = text if isinstance(text, bytes) else text.encode()
    for secret in SECRETS:
        assert secret.encode() not in data, f"{secret!r} found in {where}"


def test_the_target_receives_the_secret_values_in_clear(
    calls: dict[str, Any], target: TargetServer
) -> None:
    received = target.wait_for(1, path=calls["path"])[0]
    assert received.headers["authorization"] == BEARER
    assert received.headers["x-custom-token"] == TOKEN
    assert received.headers["x-trace"] == "t-1"
    batch_received = target.wait_for(1, path=calls["batch_path"])[0]
    assert batch_received.headers["x-batch-secret"] == BATCH_SECRET


def test_api_answers_show_secret_values_redacted(calls: dict[str, Any], api: httpx.Client) -> None:
    call_id = calls["id"]
    submitted = calls["submitted"].json()
    assert submitted["request"]["headers"] == {
        "Authorization": "[REDACTED]", "X-Custom-Token": "[REDACTED]", "X-Trace": "t-1"
    }
    assert submitted["request"]["secret_headers"] == ["x-custom-token"]
    call = api.get(f"/v1/service-calls/{call_id}").json()
    assert call["request"]["headers"] == submitted["request"]["headers"]
    batch = api.get(f"/v1/service-calls/{calls['batch_id']}").json()
    assert batch["request"]["headers"] == {"X-Batch-Secret": "[REDACTED]"}
    executions = api.get(f"/v1/service-calls/{call_id}/executions").json()["items"]
    assert executions[0]["request"]["headers"]["X-Custom-Token"] == "[REDACTED]"
    wait_until(lambda: api.get("/v1/executions", params={"service_call_id": call_id}).json()[
        "items"], timeout=10)
    answers = {
        "GET call": api.get(f"/v1/service-calls/{call_id}"),
        "GET call at version 1": api.get(f"/v1/service-calls/{call_id}?version=1"),
        "GET batch call": api.get(f"/v1/service-calls/{calls['batch_id']}"),
        "list": api.get("/v1/service-calls", params={"name": "secret-headers", "limit": 100}),
        "executions": api.get(f"/v1/service-calls/{call_id}/executions"),
        "batch executions": api.get(f"/v1/service-calls/{calls['batch_id']}/executions"),
        "execution search": api.get("/v1/executions", params={"service_call_id": call_id}),
        "latest executions": api.get("/v1/executions/latest"),
        "execution detail": api.get(f"/v1/executions/{executions[0]['id']}"),
    }
    _assert_no_secret(calls["submitted"].text, "the submit answer")
    for where, answer in answers.items():
        assert answer.status_code == 200, (where, answer.text)
        _assert_no_secret(answer.text, where)
        assert "enc:v1:" not in answer.text, where  # nor is the ciphertext shown
    assert call_id in answers["list"].text
    echoed = answers["batch executions"].json()["items"][0]["body_snippet"]
    assert json.loads(echoed)["headers"]["x-batch-secret"] == "[REDACTED]"  # cut out when recorded


def test_history_and_export_show_secret_values_redacted(
    calls: dict[str, Any], api: httpx.Client
) -> None:
    for call_id in (calls["id"], calls["batch_id"]):
        history = api.get(f"/v1/service-calls/{call_id}/events")
        assert history.status_code == 200
        _assert_no_secret(history.text, "history (json)")
        ndjson = api.get(f"/v1/service-calls/{call_id}/events", params={"format": "ndjson"})
        _assert_no_secret(ndjson.text, "history (ndjson)")
        assert "enc:v1:" not in history.text + ndjson.text  # ciphertext is not shown either
    submitted = api.get(f"/v1/service-calls/{calls['id']}/events").json()["items"][0]
    assert submitted["payload"]["headers"] == {
        "Authorization": "[REDACTED]", "X-Custom-Token": "[REDACTED]", "X-Trace": "t-1"
    }
    export = api.get("/v1/audit/export")
    assert export.status_code == 200
    assert calls["id"] in export.text
    _assert_no_secret(export.text, "audit export")
    assert "enc:v1:" not in export.text


def _table_contents(conn: psycopg.Connection[Any], table: str) -> bytes:
    """Every row of ``table`` as text, and the raw bytes of its bytea columns (which the
    text form would show in hex)."""
    name = sql.Identifier(table)
    parts = [
        str(row[0]).encode()
        for row in conn.execute(sql.SQL("SELECT t::text FROM {} AS t").format(name))
    ]
    binary = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s AND data_type = 'bytea'",
        (table,),
    ).fetchall()
    for (column,) in binary:
        query = sql.SQL("SELECT {} FROM {}").format(sql.Identifier(column), name)
        parts.extend(bytes(row[0]) for row in conn.execute(query) if row[0] is not None)
    return b"\n".join(parts)


def test_every_table_holds_only_ciphertext(
    calls: dict[str, Any], duecall_server: DuecallProcess
) -> None:
    with psycopg.connect(duecall_server.database_url, autocommit=True) as conn:
        states = [bytes(row[0]) for row in conn.execute("SELECT state FROM duecall_events")]
        tables = [
            str(row[0])
            for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        contents = {table: _table_contents(conn, table) for table in tables}
    payload = calls["execute_payload"]  # the message that asked for the attempt (consumed now)
    _assert_no_secret(json.dumps(payload), "the outbox's execute message")
    assert payload["request"]["headers"]["X-Custom-Token"].startswith("enc:v1:")
    assert payload["request"]["headers"]["Authorization"].startswith("enc:v1:")
    assert payload["request"]["secret_headers"] == ["x-custom-token"]
    _assert_no_secret(b"\n".join(states), "duecall_events (state)")
    assert any(b"enc:v1:" in s and b'"x-custom-token"' in s for s in states)  # Submitted
    assert {
        EVENTS_TABLE, OUTBOX_TABLE, IDEMPOTENCY_TABLE, CALLS_READ_MODEL, EXECUTIONS_READ_MODEL
    } <= set(contents)
    for table, content in contents.items():
        _assert_no_secret(content, f"table {table}")


def test_the_server_log_never_shows_the_secrets(
    calls: dict[str, Any], duecall_server: DuecallProcess
) -> None:
    log = duecall_server.log_text()
    assert calls["id"] in log  # the call's events were logged
    _assert_no_secret(log, "the server's log")


def test_an_idempotent_resubmission_with_the_same_secret_answers_the_original(
    calls: dict[str, Any], api: httpx.Client
) -> None:
    body = calls["body"]
    again = api.post("/v1/service-calls", json=body, headers={"Idempotency-Key": calls["key"]})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == calls["id"]
    _assert_no_secret(again.text, "the idempotent answer")
    other = json.loads(json.dumps(body))
    other["request"]["headers"]["Authorization"] = "Bearer another"
    reused = api.post("/v1/service-calls", json=other, headers={"Idempotency-Key": calls["key"]})
    assert reused.status_code == 409, reused.text


def test_invalid_secret_header_names_are_refused(api: httpx.Client, target: TargetServer) -> None:
    bad_name = {"request": {"url": f"{target.url}/x", "secret_headers": ["X Bad"]}}
    refused = api.post("/v1/service-calls", json=bad_name)
    assert refused.status_code == 422, refused.text
    assert "secret_headers" in refused.text
    too_many = {"request": {"url": f"{target.url}/x",
                            "secret_headers": [f"X-S{i}" for i in range(65)]}}
    assert api.post("/v1/service-calls", json=too_many).status_code == 422
