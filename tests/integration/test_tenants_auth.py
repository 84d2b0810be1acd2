"""API keys over the real API and database: who may call, as which tenant, how often.

Walks every /v1 route: without a key → 401; with tenant B's key on tenant A's ids → 404.
"""

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from harness.target_server import TargetServer
from infrastructure.settings import Settings
from interfaces.api.app import create_app
from tests.support.problems import assert_problem
from tests.support.waiting import wait_until

ADMIN = {"Authorization": "Bearer the-admin-key"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(settings: Settings, clean_database: str) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"admin_key": "the-admin-key"})
    with TestClient(create_app(configured, with_workers=True)) as client:
        yield client


def _create(client: TestClient, name: str, **limits: Any) -> dict[str, Any]:
    response = client.post("/v1/admin/tenants", json={"name": name, **limits}, headers=ADMIN)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _tenant(client: TestClient, name: str) -> str:
    """A tenant with a fresh name (the session database outlives a test) and its key."""
    existing = client.get("/v1/admin/tenants", headers=ADMIN).json()["items"]
    name = f"{name}-{len(existing)}"
    key: str = _create(client, name)["key"]
    return key


def test_the_admin_api_needs_the_admin_key(client: TestClient) -> None:
    assert_problem(client.get("/v1/admin/tenants"), 401)
    assert_problem(client.get("/v1/admin/tenants", headers=bearer("guess")), 401)
    key = _tenant(client, "not-admin")
    assert_problem(client.get("/v1/admin/tenants", headers=bearer(key)), 401)


def test_the_admin_api_is_off_without_an_admin_key(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        problem = assert_problem(client.get("/v1/admin/tenants", headers=ADMIN), 401)
    assert "DUECALL_ADMIN_KEY" in problem["detail"]


def test_tenants_are_created_once_with_valid_names(client: TestClient) -> None:
    created = _create(client, "acme-unique")
    assert created["key"].startswith(created["api_key"]["prefix"] + "_")
    assert_problem(client.post("/v1/admin/tenants", json={"name": "acme-unique"},
                               headers=ADMIN), 409)
    bad = assert_problem(client.post("/v1/admin/tenants", json={"name": "Not_Valid"},
                                     headers=ADMIN), 422)
    assert bad["errors"][0]["field"] == "name"
    listed = client.get("/v1/admin/tenants/acme-unique", headers=ADMIN).json()
    assert [k["prefix"] for k in listed["keys"]] == [created["api_key"]["prefix"]]
    assert "key" not in listed["keys"][0]


def test_keys_are_recorded_only_as_hashes(client: TestClient, database_url: str) -> None:
    key = _tenant(client, "hashed")
    secret = key.rsplit("_", 1)[1]
    with psycopg.connect(database_url) as conn:
        states = [bytes(r[0]) for r in conn.execute("SELECT state FROM duecall_events")]
    assert states
    assert not any(secret.encode() in state for state in states)


def test_a_rotated_key_works_until_its_grace_ends_and_a_revoked_one_stops(
    client: TestClient,
) -> None:
    created = _create(client, "rotating")
    old_key, key_id = created["key"], created["api_key"]["id"]
    rotate = f"/v1/admin/tenants/rotating/keys/{key_id}/rotate"
    new = client.post(rotate, json={"grace_seconds": 3600}, headers=ADMIN).json()
    for key in (old_key, new["key"]):  # two valid keys during the rotation
        assert client.get("/v1/service-calls", headers=bearer(key)).status_code == 200
    newest = client.post(f"/v1/admin/tenants/rotating/keys/{new['api_key']['id']}/rotate",
                         json={"grace_seconds": 0}, headers=ADMIN).json()
    assert_problem(client.get("/v1/service-calls", headers=bearer(new["key"])), 401)
    assert client.get("/v1/service-calls", headers=bearer(newest["key"])).status_code == 200

    revoke = f"/v1/admin/tenants/rotating/keys/{key_id}/revoke"
    assert client.post(revoke, headers=ADMIN).json()["revoked_at"] is not None
    assert_problem(client.get("/v1/service-calls", headers=bearer(old_key)), 401)
    assert_problem(client.post(revoke, headers=ADMIN), 404)  # revoked already


def test_a_key_over_its_rate_gets_429_with_retry_after(client: TestClient) -> None:
    key = _create(client, "limited-unique", rate_per_second=0.5, burst=2)["key"]
    answers = [client.get("/v1/retry-policy", headers=bearer(key)) for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    assert_problem(answers[2], 429)
    assert int(answers[2].headers["Retry-After"]) >= 1


def test_a_tenant_reads_and_rotates_its_signing_secret(client: TestClient) -> None:
    key = _tenant(client, "signer")
    first = client.get("/v1/signing-secret", headers=bearer(key)).json()["secrets"]
    assert len(first) == 1
    assert first[0].startswith("whsec_")
    rotated = client.post("/v1/signing-secret/rotate", json={}, headers=bearer(key)).json()
    assert rotated["secrets"][1:] == first
    assert len(rotated["secrets"]) == 2


# -- every route ------------------------------------------------------------------------


def _tenant_routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every tenant route the API publishes."""
    paths: dict[str, dict[str, Any]] = client.get("/openapi.json").json()["paths"]
    found = [
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/v1/") and not path.startswith("/v1/admin")
        for method in sorted(operations)
    ]
    assert len(found) >= 20, found  # the walk must see the whole API
    return found


def test_every_route_needs_a_key(client: TestClient) -> None:
    for method, path in _tenant_routes(client):
        concrete = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
        for headers in ({}, bearer("dc_nobody_0000_secret")):
            response = client.request(method, concrete, headers=headers, json={})
            assert response.status_code == 401, (method, path, response.text)


def test_another_tenants_ids_are_not_found_on_every_route(client: TestClient) -> None:
    key_a, key_b = _tenant(client, "owner-a"), _tenant(client, "owner-b")
    with TargetServer() as target:  # a 503: so the call has a circuit and an execution
        body = {"request": {"method": "POST", "url": f"{target.url}/status/503"},
                "retry_policy": {"max_attempts": 1}}
        call = client.post("/v1/service-calls", json=body, headers=bearer(key_a)).json()
        execution_of = f"/v1/service-calls/{call['id']}/executions"
        wait_until(lambda: client.get(execution_of, headers=bearer(key_a)).json()["items"], 10)
    execution = client.get(execution_of, headers=bearer(key_a)).json()["items"][0]
    schedule = client.post("/v1/schedules", headers=bearer(key_a), json={
        "name": "s", "spec": {"interval_seconds": 3600}, "call": {"request": body["request"]},
    }).json()
    run = client.post("/v1/workflows/runs", headers=bearer(key_a), json={"definition": {
        "name": "w", "steps": [{"id": "a", "request": body["request"]}],
    }}).json()
    stored = client.put("/v1/workflows/definitions/w", headers=bearer(key_a), json={
        "steps": [{"id": "a", "request": body["request"]}],
    })
    assert stored.status_code == 201, stored.text
    values = {"service_call_id": call["id"], "execution_id": execution["id"],
              "host": "127.0.0.1", "schedule_id": schedule["id"], "run_id": run["id"],
              "step_id": "a", "name": "w", "version": "1"}
    walked = 0
    for method, path in _tenant_routes(client):
        params = re.findall(r"\{([^}]+)\}", path)
        skipped = method == "DELETE" or path.endswith("backfill")
        if not params or (skipped and "schedule_id" in params):
            continue  # the owner's delete would end the walk's schedule (e2e tests cover it)
        if method == "PUT":
            continue  # a definition's name is per tenant: the other's PUT stores its own
        concrete = path.format(**{p: values[p] for p in params})
        mine = client.request(method, concrete, headers=bearer(key_a), json={})
        theirs = client.request(method, concrete, headers=bearer(key_b), json={})
        assert mine.status_code != 404, (method, concrete, mine.text)
        assert_problem(theirs, 404)
        walked += 1
    assert walked >= 8


def test_an_api_body_over_the_limit_is_413_before_it_is_read(
    settings: Settings, clean_database: str
) -> None:
    small = settings.model_copy(update={"max_api_body_bytes": 4096})
    with TestClient(create_app(small)) as client:
        key = client.app.state.container.tenants.create("big-bodies").key  # type: ignore[attr-defined]
        huge = {"calls": [{"request": {"method": "POST", "url": "http://example.com/",
                                       "body": "x" * 3000}}] * 2}
        declared = client.post("/v1/service-calls:batch", json=huge, headers=bearer(key))
        streamed = client.post("/v1/service-calls:batch", headers=bearer(key),
                               content=iter([b'{"calls": [', b" " * 5000, b"]}"]))
        for response in (declared, streamed):
            problem = assert_problem(response, 413)
            assert problem["errors"][0]["field"] == "body"
        listed = client.get("/v1/service-calls", headers=bearer(key)).json()
    assert listed["items"] == []
