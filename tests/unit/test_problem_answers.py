"""Every error is answered as problem+json, and the OpenAPI document says so: an unexpected
error (500 with a request id, logged with its traceback), a write conflict (409), an
unsupported method (405 with ``Allow``)."""

import functools
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from application.conflicts import ConcurrentUpdateError
from interfaces.api.app import create_app
from interfaces.api.problems import MEDIA_TYPE


@pytest.fixture
def app() -> FastAPI:
    """The real application (not started: these routes need no database)."""
    app = create_app()

    @app.get("/test/boom")
    def boom() -> None:
        raise RuntimeError("secret internals: /etc/passwd")

    @app.get("/test/conflict")
    def conflict() -> None:
        raise ConcurrentUpdateError("service call 42")

    return app


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def test_an_unexpected_error_is_a_problem_with_a_request_id_and_no_traceback(
    client: TestClient,
) -> None:
    with capture_logs() as logs:
        answer = client.get("/test/boom")

    assert answer.status_code == 500
    assert answer.headers["content-type"] == MEDIA_TYPE
    body = answer.json()
    request_id = answer.headers["x-request-id"]
    assert body["request_id"] == request_id
    assert body["status"] == 500
    assert request_id in body["detail"]
    assert "secret internals" not in answer.text
    assert "Traceback" not in answer.text
    (logged,) = [entry for entry in logs if entry["event"] == "unhandled_error"]
    assert logged["request_id"] == request_id
    assert logged["log_level"] == "error"
    assert isinstance(logged["exc_info"], RuntimeError)
    assert logged["path"] == "/test/boom"


def test_a_write_conflict_is_409_with_retry_after(client: TestClient) -> None:
    answer = client.get("/test/conflict")

    assert answer.status_code == 409
    assert answer.headers["content-type"] == MEDIA_TYPE
    assert answer.headers["retry-after"] == "1"
    assert "try again" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("TRACE", "/healthz", "GET"),
        ("TRACE", "/v1/service-calls", "GET, POST"),
        ("OPTIONS", "/v1/retry-policy", "GET, PUT"),  # two routes: both named
        ("DELETE", "/v1/service-calls/0190f5a2-0000-7000-8000-000000000000/pause", "POST"),
    ],
)
def test_an_unsupported_method_is_405_with_allow(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    answer = client.request(method, path)

    assert answer.status_code == 405
    assert answer.headers["allow"] == allow
    assert answer.headers["content-type"] == MEDIA_TYPE


@functools.cache
def openapi() -> dict[str, Any]:
    """The app's OpenAPI document (made once for the module's tests)."""
    document: dict[str, Any] = create_app().openapi()
    return document


def _operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def test_openapi_documents_every_error_as_problem_json() -> None:
    schema = openapi()

    assert "HTTPValidationError" not in str(schema)
    assert "Problem" in schema["components"]["schemas"]
    for path, method, operation in _operations(schema):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                content = response["content"]
                assert list(content) == [MEDIA_TYPE], (method, path, status)
                assert content[MEDIA_TYPE]["schema"] == {"$ref": "#/components/schemas/Problem"}


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/v1/service-calls", {"400", "401", "409", "413", "422", "429", "503"}),
        ("post", "/v1/service-calls/{service_call_id}/pause",
         {"401", "404", "409", "422", "429", "503"}),
        ("post", "/v1/circuits/{host}/reset", {"401", "404", "409", "422", "429", "503"}),
        ("get", "/v1/circuits", {"401", "429", "503"}),
        ("get", "/v1/admin/tenants", {"401", "503"}),  # the admin key is not rate limited
        ("get", "/healthz", set()),
    ],
)
def test_openapi_states_which_problems_each_operation_answers(
    method: str, path: str, statuses: set[str]
) -> None:
    responses = openapi()["paths"][path][method]["responses"]

    assert {s for s in responses if int(s) >= 400} == statuses
