"""End to end: the outbound guards of a real `duecall serve` (whose allowlist admits
127.0.0.1/32, ::1/128 and localhost only, as the test environment sets it).

A call to a refused target fails at its first attempt as ``rejected`` (not retried), with the
reason in its execution, and the target never hears of it; a redirect into a refused address
is refused too. Oversized inputs are refused at submit (413/422 naming the field) and nothing
is recorded, not even the valid items of a batch.
"""

import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from domain.request import DEFAULT_MAX_BODY_BYTES
from harness.target_server import TargetServer
from tests.support.problems import assert_problem

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[TargetServer]:
    """A server on 127.0.0.2: loopback, but not admitted by the server's allowlist."""
    with TargetServer(host="127.0.0.2") as server:
        yield server


def _call(url: str, **fields: Any) -> dict[str, Any]:
    request = {"method": "POST", "url": url, "body": {"hello": "world"}}
    return {"name": "e2e-outbound", "request": {**request, **fields.pop("request", {})}, **fields}


def _finished(api: httpx.Client, call_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        call: dict[str, Any] = api.get(f"/v1/service-calls/{call_id}").json()
        if call["status"] in ("succeeded", "failed", "cancelled"):
            return call
        assert time.monotonic() < deadline, f"call still {call['status']}"
        time.sleep(0.1)


def _submit_and_finish(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    submitted = api.post("/v1/service-calls", json=body)
    assert submitted.status_code == 201, submitted.text
    return _finished(api, submitted.json()["id"])


def _assert_rejected(api: httpx.Client, call: dict[str, Any], reason: str) -> None:
    assert (call["status"], call["attempt"], call["last_error_kind"]) == (
        "failed", 1, "rejected")
    (execution,) = api.get(f"/v1/service-calls/{call['id']}/executions").json()["items"]
    assert (execution["outcome"], execution["error_kind"]) == ("failed", "rejected")
    assert execution["status_code"] is None
    assert reason in execution["message"]
    events = api.get(f"/v1/service-calls/{call['id']}/events").json()["items"]
    (failed,) = [e["payload"] for e in events if e["type"] == "ServiceCall.Failed"]
    assert (failed["reason"], failed["error_kind"]) == ("not_retryable", "rejected")


def test_a_call_to_a_non_allowlisted_loopback_address_fails_as_rejected(
    api: httpx.Client, elsewhere: TargetServer
) -> None:
    call = _submit_and_finish(api, _call(f"{elsewhere.url}/ok"))
    _assert_rejected(api, call, "refused: 127.0.0.2 is a loopback address")
    assert elsewhere.requests == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.255.255.1/", "refused: 10.255.255.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "is a cloud metadata address"),
        ("http://metadata.google.internal/", "is a cloud metadata host name"),
        ("http://0x7f.2:9/", "refused: 127.0.0.2 is a loopback address (host 0x7f.2)"),
    ],
)
def test_calls_to_internal_targets_fail_as_rejected_saying_why(
    api: httpx.Client, url: str, reason: str
) -> None:
    _assert_rejected(api, _submit_and_finish(api, _call(url)), reason)


def test_a_call_to_an_allowlisted_target_still_arrives(
    api: httpx.Client, target: TargetServer
) -> None:
    path = f"/allowed/{uuid.uuid4().hex}"
    call = _submit_and_finish(api, _call(f"{target.url}{path}"))
    assert call["status"] == "succeeded"
    assert len(target.requests_for(path)) == 1


def test_a_redirect_into_a_refused_address_is_refused_when_following_redirects(
    api: httpx.Client, target: TargetServer, elsewhere: TargetServer
) -> None:
    into = quote(f"{elsewhere.url}/ok", safe="")
    path = f"/redirect/307?to={into}"
    call = _submit_and_finish(api, _call(f"{target.url}{path}", request={"follow_redirects": True}))
    assert call["request"]["follow_redirects"] is True
    _assert_rejected(api, call, "refused: 127.0.0.2 is a loopback address")
    assert len(target.requests_for("/redirect/307")) >= 1
    assert elsewhere.requests == []


def test_without_follow_redirects_the_redirect_is_the_answer(
    api: httpx.Client, target: TargetServer, elsewhere: TargetServer
) -> None:
    into = quote(f"{elsewhere.url}/ok", safe="")
    call = _submit_and_finish(api, _call(f"{target.url}/redirect/302?to={into}"))
    assert call["request"]["follow_redirects"] is False
    assert (call["status"], call["last_status_code"]) == ("failed", 302)
    assert elsewhere.requests == []


# -- limits at submit ---------------------------------------------------------------------------


def _field_of(response: httpx.Response, status: int) -> str:
    problem = assert_problem(response, status)
    (error,) = problem["errors"]
    return str(error["field"])


def test_oversized_inputs_are_refused_naming_the_field_and_nothing_is_recorded(
    api: httpx.Client, target: TargetServer
) -> None:
    marker = f"oversized-{uuid.uuid4().hex}"
    url = f"{target.url}/never"
    too_long_url = f"{target.url}/{'a' * (2049 - len(target.url) - 1)}"
    assert len(too_long_url) == 2049
    cases = [
        (_call(url, request={"body": "x" * (DEFAULT_MAX_BODY_BYTES + 1)}), 413, "request.body"),
        (_call(url, request={"body": {"blob": "x" * DEFAULT_MAX_BODY_BYTES}}), 413, "request.body"),
        (_call(url, request={"headers": {f"X-H{i}": "v" for i in range(65)}}),
         422, "request.headers"),
        (_call(too_long_url), 422, "request.url"),
    ]
    for body, status, field in cases:
        response = api.post("/v1/service-calls", json={**body, "correlation_id": marker})
        assert _field_of(response, status) == field

    ok = {**_call(url), "correlation_id": marker}
    too_big = "x" * (DEFAULT_MAX_BODY_BYTES + 1)
    big = {**_call(url, request={"body": too_big}), "correlation_id": marker}
    many = {**_call(url, request={"headers": {f"X-H{i}": "v" for i in range(65)}}),
            "correlation_id": marker}
    batch = api.post("/v1/service-calls:batch", json={"calls": [ok, big]})
    assert _field_of(batch, 413) == "calls.1.request.body"
    batch = api.post("/v1/service-calls:batch", json={"calls": [ok, ok, many]})
    assert _field_of(batch, 422) == "calls.2.request.headers"

    later = api.post("/v1/service-calls", json=_call(f"{target.url}/ok"))  # a write after them
    assert later.status_code == 201
    position = later.headers["X-Duecall-Position"]
    page = api.get("/v1/service-calls", params={"correlation_id": marker, "min_position": position})
    assert page.status_code == 200
    assert page.json()["meta"]["stale"] is False
    assert page.json()["items"] == []
    assert target.requests_for("/never") == []


def test_a_body_at_the_limit_is_accepted(api: httpx.Client, target: TargetServer) -> None:
    at_limit = "x" * DEFAULT_MAX_BODY_BYTES
    body = _call(f"{target.url}/ok", request={"body": at_limit}, delay_seconds=3600)
    submitted = api.post("/v1/service-calls", json=body, timeout=60)  # 0.4 s when idle
    assert submitted.status_code == 201, submitted.text
    assert api.post(f"/v1/service-calls/{submitted.json()['id']}/cancel").status_code == 200


def test_a_1_mib_body_is_delivered_whole(api: httpx.Client, target: TargetServer) -> None:
    # 1 MiB once hung the recorder's insert on the embedded server, when it was a psycopg
    # pipeline (one that stopped flushing); the event goes in one statement now
    assert DEFAULT_MAX_BODY_BYTES == 1024 * 1024
    path = f"/big-{uuid.uuid4().hex}"
    body = _call(f"{target.url}{path}", request={"body": "y" * DEFAULT_MAX_BODY_BYTES})
    submitted = api.post("/v1/service-calls", json=body, timeout=60)
    assert submitted.status_code == 201, submitted.text
    call = _finished(api, submitted.json()["id"], timeout=60)
    assert (call["status"], call["attempt"]) == ("succeeded", 1)
    (received,) = target.requests_for(path)
    assert received.body == b"y" * DEFAULT_MAX_BODY_BYTES
