"""The OpenAPI document says what the API accepts: bounds as JSON Schema keywords, the
choices of enum-like values, the domain's patterns, and the rule that `due_at` and
`delay_seconds` are not given together (schemathesis checks that schema-valid requests pass)."""

import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs  # schemathesis's validator
import pytest
from pydantic import BaseModel, ValidationError

from domain.errors import InvalidRequestError
from domain.retry_policy import RetryPolicy
from domain.tenant import check_tenant_name
from interfaces.api.app import create_app
from interfaces.api.schemas import RetryPolicyCreate, ServiceCallCreate
from interfaces.api.tenant_schemas import TenantCreate
from projections.executions import OUTCOMES
from projections.service_calls import STATUSES
from projections.statistics_query import GROUPS

SOON = (datetime.now(UTC) + timedelta(days=1)).isoformat()


@functools.cache
def openapi() -> dict[str, Any]:
    """The app's OpenAPI document (made once, when a test first needs it)."""
    document: dict[str, Any] = create_app().openapi()
    return document


def schemas() -> dict[str, Any]:
    """The document's component schemas."""
    found: dict[str, Any] = openapi()["components"]["schemas"]
    return found


def _subschemas(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _subschemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _subschemas(value)


def _accepted(model: type[BaseModel], data: dict[str, Any]) -> bool:
    try:
        model.model_validate(data)
    except (ValidationError, InvalidRequestError):
        return False
    return True


def _schema_admits(name: str, data: dict[str, Any]) -> bool:
    schema = {**schemas()[name], "components": {"schemas": schemas()}}  # refs resolve in it
    return bool(jsonschema_rs.Draft202012Validator(schema).is_valid(data))


def test_bounds_are_json_schema_keywords_not_pydantic_ones() -> None:
    pydantic_names = {"gt", "ge", "lt", "le"}
    typed = [s for s in _subschemas(openapi()) if s.get("type") in ("integer", "number")]
    assert not [s for s in typed if pydantic_names & s.keys()]
    burst = schemas()["KeyLimits"]["properties"]["burst"]["anyOf"][0]
    assert (burst["type"], burst["minimum"], burst["maximum"]) == ("integer", 1, 1_000_000)


@pytest.mark.parametrize(
    ("path", "name", "choices"),
    [("/v1/service-calls", "status", STATUSES), ("/v1/executions", "outcome", OUTCOMES),
     ("/v1/stats", "group_by", GROUPS)],
)
def test_enum_like_query_values_list_their_choices(
    path: str, name: str, choices: frozenset[str]
) -> None:
    parameters = openapi()["paths"][path]["get"]["parameters"]
    schema = next(p["schema"] for p in parameters if p["name"] == name)
    assert schema["items"]["enum"] == sorted(choices)


@pytest.mark.parametrize(
    "token",
    ["timeout", "NETWORK", "lost", "rejected", "circuit_open", "100", "503", "599", "1xx",
     "5XX", "", "sometimes", "600", "099", "0503", "6xx", "5xxx", " 503", "503\n",
     "\uff15\uff10\uff13"],  # fullwidth 503: str.isdigit() takes it
)
def test_retry_on_is_refused_by_the_schema_exactly_when_by_the_api(token: str) -> None:
    def domain_takes() -> bool:
        try:
            RetryPolicy(retry_on=(token,))
        except (InvalidRequestError, ValueError):
            return False
        return True

    api_takes = _accepted(RetryPolicyCreate, {"retry_on": [token]})
    assert _schema_admits("RetryPolicyCreate", {"retry_on": [token]}) == api_takes
    if api_takes:
        assert domain_takes()


@pytest.mark.parametrize(
    "name", ["acme", "a", "0", "a-b-9", "a" * 63, "a" * 64, "-a", "Acme", "a_b", "a b", "é",
             "acme\n", ""],
)
def test_a_tenant_name_is_refused_by_the_schema_exactly_when_by_the_domain(name: str) -> None:
    try:
        domain_takes = check_tenant_name(name) == name
    except InvalidRequestError:
        domain_takes = False
    assert _accepted(TenantCreate, {"name": name}) == domain_takes
    assert _schema_admits("TenantCreate", {"name": name}) == domain_takes


@pytest.mark.parametrize(
    ("due", "admitted"),
    [
        ({"due_at": SOON, "delay_seconds": 5}, False),
        ({"due_at": SOON, "delay_seconds": None}, True),
        ({"due_at": None, "delay_seconds": 5}, True),
        ({"due_at": None, "delay_seconds": None}, True),
        ({"delay_seconds": 5}, True),
        ({}, True),
    ],
)
def test_due_at_with_delay_seconds_is_refused_by_the_schema_and_the_api(
    due: dict[str, Any], admitted: bool
) -> None:
    call = {"request": {"url": "https://example.com/hook"}, **due}
    assert _schema_admits("ServiceCallCreate", call) == admitted
    assert _schema_admits("ServiceCallBatchItem", call) == admitted
    assert _accepted(ServiceCallCreate, call) == admitted


def _request_admitted(request: dict[str, Any]) -> tuple[bool, bool]:
    """(the schema admits it, the API takes it: the model and then the domain's rules)."""
    call = {"request": {"url": "https://example.com/hook", **request}}
    try:
        ServiceCallCreate.model_validate(call).request.spec()
        taken = True
    except (ValidationError, InvalidRequestError):
        taken = False
    return _schema_admits("ServiceCallCreate", call), taken


@pytest.mark.parametrize(
    "request_fields",
    [
        {"method": "GET"}, {"method": "patch"}, {"method": "Delete"}, {"method": "TRACE"},
        {"method": ""}, {"method": "GET "}, {"method": "P\x00ST"},
        {"headers": {"X-Trace": "t-1"}}, {"headers": {"": "x"}}, {"headers": {"X Y": "x"}},
        {"headers": {"X(": "x"}}, {"headers": {"host": "x"}}, {"headers": {"Duecall-Id": "x"}},
        {"headers": {"TE": "x"}}, {"headers": {"Tea": "x"}}, {"headers": {"X": "a\tb é"}},
        {"headers": {"X": "a\nb"}}, {"headers": {"X": "\x7f"}}, {"headers": {"X": "€"}},
        {"url": "http://a/"}, {"url": "HTTPS://Bücher.example:00443/p?q#f"},
        {"url": "http://a:65535"}, {"url": "http://a:65536/"}, {"url": "http://a:/"},
        {"url": "http://a:b/"}, {"url": "http://:80/"}, {"url": "http://u:p@h/"},
        {"url": "ftp://a/"}, {"url": "http:/a/"}, {"url": "http://a/b c"},
        {"url": "http://a/\u3000"}, {"url": "http://a/\n"}, {"url": "http://a?b@c"},
        {"secret_headers": ["X-Token"]}, {"secret_headers": [""]},
        {"secret_headers": ["X Token"]}, {"secret_headers": ["x" * 257]},
    ],
)
def test_a_request_is_refused_by_the_schema_exactly_when_by_the_api(
    request_fields: dict[str, Any],
) -> None:
    admitted, taken = _request_admitted(request_fields)
    assert admitted == taken


def test_text_with_nul_is_outside_the_schema() -> None:
    assert not _schema_admits("CancelRequest", {"reason": "why\x00"})
    assert _schema_admits("CancelRequest", {"reason": "why ¿"})
