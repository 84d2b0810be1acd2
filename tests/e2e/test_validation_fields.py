"""Validation errors name the field the client got wrong, whatever the kind of mistake."""

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from harness.duecall_process import DuecallProcess
from harness.processes import ADMIN_KEY
from tests.support.problems import assert_problem

pytestmark = pytest.mark.e2e


def _fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [error["field"] for error in response.json()["errors"]]


def test_due_at_with_delay_seconds_names_delay_seconds(api: httpx.Client) -> None:
    due_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = {"request": {"url": "http://x.test/"}, "due_at": due_at, "delay_seconds": 5}
    assert "delay_seconds" in _fields(api.post("/v1/service-calls", json=body))


def test_malformed_json_names_the_body(api: httpx.Client) -> None:
    response = api.post(
        "/v1/service-calls", content=b'{"request": ', headers={"content-type": "application/json"}
    )
    assert _fields(response) == ["body"]


CALL = "/v1/service-calls/01a20190-0bf1-7ac5-9f64-bfcd50429f19"


def _unauthorized(response: httpx.Response) -> None:
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_request_without_an_api_key_is_401(duecall_server: DuecallProcess) -> None:
    with httpx.Client(base_url=duecall_server.url, timeout=10.0) as anonymous:
        _unauthorized(anonymous.get(CALL))
        _unauthorized(anonymous.get(CALL, headers={"X-Tenant-Id": "default"}))  # not a key
        body = {"request": {"url": "http://x.test/"}}
        _unauthorized(anonymous.post("/v1/service-calls", json=body))


def test_a_malformed_or_unknown_api_key_is_401(duecall_server: DuecallProcess) -> None:
    key = duecall_server.tenant_key("default")
    prefix, tenant, key_id, secret = key.split("_", 3)
    refused = {
        "no credentials": "Bearer",
        "another scheme": f"Basic {key}",
        "not a key": "Bearer not-a-key",
        "a truncated key": f"Bearer {prefix}_{tenant}",
        "a wrong secret": f"Bearer {prefix}_{tenant}_{key_id}_{secret[::-1]}x",
        "an unknown key id": f"Bearer {prefix}_{tenant}_{key_id}x_{secret}",
        "an unknown tenant": f"Bearer {prefix}_no-such-tenant_{key_id}_{secret}",
        "another tenant's name": f"Bearer {prefix}_other_{key_id}_{secret}",
    }
    with httpx.Client(base_url=duecall_server.url, timeout=10.0) as client:
        for why, authorization in refused.items():
            response = client.get(CALL, headers={"Authorization": authorization})
            assert response.status_code == 401, (why, response.text)
            _unauthorized(response)


def test_the_tenant_is_the_keys_whatever_x_tenant_id_says(api: httpx.Client) -> None:
    body = {"request": {"url": "http://x.test/"}, "delay_seconds": 3600}
    response = api.post("/v1/service-calls", json=body, headers={"X-Tenant-Id": "someone-else"})
    assert response.status_code == 201, response.text
    assert response.json()["tenant_id"] == "default"  # `api` carries a key of tenant "default"
    api.post(f"/v1/service-calls/{response.json()['id']}/cancel")


# Issue 15: what used to be accepted (and then stalled a read model, smuggled a request or
# failed later), or answered a bare 500, is refused at submit naming the field.

URL = "http://x.test/hook"


def _post_raw(api: httpx.Client, path: str, body: object) -> httpx.Response:
    """``body`` as Python's json module writes it: NaN as is, NUL and surrogates escaped."""
    content = json.dumps(body).encode()
    return api.post(path, content=content, headers={"content-type": "application/json"})


def _call(**fields: object) -> dict[str, object]:
    return {"request": {"url": URL}, "delay_seconds": 3600, **fields}


def _with_request(**fields: object) -> dict[str, object]:
    return _call(request={"url": URL, **fields})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_call(tags=["t" * 4000]), "tags.0"),
        (_call(name="a\x00b"), "name"),
        (_call(tags=["a\x00"]), "tags.0"),
        (_call(correlation_id="c\x00"), "correlation_id"),
        (_with_request(body="a\x00b"), "request.body"),
        (_with_request(body="lone \ud800"), "request.body"),
        (_with_request(body={"k\x00": ["v"]}), "request.body"),
        (_with_request(body={"amount": float("nan")}), "request.body"),
        (_with_request(body=[float("inf")]), "request.body"),
        (_with_request(headers={"X-A\x00": "v"}), "request.headers"),
        (_with_request(headers={"X-A": "v\x00"}), "request.headers"),
        (_with_request(headers={"X\tTab": "v"}), "request.headers"),
        (_with_request(headers={"X-A": "v\x0bw"}), "request.headers"),
        (_with_request(headers={"X-A": "\u65e5\u672c"}), "request.headers"),
        (_with_request(url="http://alice:S3CRET@x.test/"), "request.url"),
        (_with_request(follow_redirects="true"), "request.follow_redirects"),
        (_call(retry_policy={"initial_backoff_seconds": False}),
         "retry_policy.initial_backoff_seconds"),
    ],
)
def test_a_bad_value_is_a_422_naming_its_field(
    api: httpx.Client, body: dict[str, object], field: str
) -> None:
    assert field in _fields(_post_raw(api, "/v1/service-calls", body))
    batch = {"calls": [_call(), body]}
    assert f"calls.1.{field}" in _fields(_post_raw(api, "/v1/service-calls:batch", batch))


RESERVED = [
    "Host", "content-length", "Transfer-Encoding", "CONNECTION", "Expect", "te", "Upgrade",
    "Keep-Alive", "Proxy-Connection", "Trailer", "idempotency-key", "Traceparent",
    "duecall-id", "Duecall-Signature", "DUECALL-TIMESTAMP",
]


@pytest.mark.parametrize("name", RESERVED)
def test_a_reserved_header_is_a_422(api: httpx.Client, name: str) -> None:
    response = api.post("/v1/service-calls", json=_with_request(headers={name: "x"}))
    assert _fields(response) == ["request.headers"]
    assert "set by duecall" in response.json()["detail"]


def test_headers_over_32_kib_are_413_single_and_per_batch_item(api: httpx.Client) -> None:
    headers = {"X-A": "a" * 20_000, "X-B": "b" * 20_000}
    response = api.post("/v1/service-calls", json=_with_request(headers=headers))
    assert assert_problem(response, 413)["errors"][0]["field"] == "request.headers"
    batch = {"calls": [_call(), _with_request(headers=headers)]}
    response = api.post("/v1/service-calls:batch", json=batch)
    assert assert_problem(response, 413)["errors"][0]["field"] == "calls.1.request.headers"


def test_url_credentials_are_refused_pointing_to_secret_headers(api: httpx.Client) -> None:
    response = api.post("/v1/service-calls", json=_with_request(url="http://a:S3CRET@x.test/"))
    assert _fields(response) == ["request.url"]
    assert "Authorization header" in response.json()["detail"]
    assert "S3CRET" not in response.text


def test_strict_numbers_in_tenant_settings_and_keys(
    api: httpx.Client, duecall_server: DuecallProcess
) -> None:
    assert "initial_backoff_seconds" in _fields(
        api.put("/v1/retry-policy", json={"initial_backoff_seconds": False})
    )
    assert _fields(api.post("/v1/signing-secret/rotate", json={"grace_seconds": False})) == [
        "grace_seconds"
    ]
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=duecall_server.url, headers=admin, timeout=10.0) as client:
        assert _fields(client.post("/v1/admin/tenants/default/keys", json={"burst": True})) == [
            "burst"
        ]
        assert _fields(client.get("/v1/admin/tenants/a%00b")) == ["name"]


def test_query_values_are_checked_before_they_reach_sql(api: httpx.Client) -> None:
    stats = {"from": "2030-01-01T00:00:00Z", "to": "0.5"}
    assert _fields(api.get("/v1/stats", params=stats)) == ["to"]
    assert _fields(api.get("/v1/service-calls", params={"name": "a\x00"})) == ["name"]
    assert _fields(api.get("/v1/service-calls", params={"tag": ["ok", "b\x00"]})) == ["tag"]
    assert _fields(api.get("/v1/executions", params={"started_from": "1"})) == ["started_from"]
    assert _fields(api.get("/v1/audit/export", params={"to": "0.5"})) == ["to"]


def test_a_cancel_reason_with_nul_is_a_422(api: httpx.Client) -> None:
    call = api.post("/v1/service-calls", json=_call()).json()
    response = api.post(f"/v1/service-calls/{call['id']}/cancel", json={"reason": "r\x00"})
    assert _fields(response) == ["reason"]
    api.post(f"/v1/service-calls/{call['id']}/cancel")
