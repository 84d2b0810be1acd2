"""The API's models refuse, naming the field, what would otherwise fail later: text the
database cannot store, over-long tags, non-JSON numbers, and values of the wrong JSON type
that lenient coercion would take (``false`` as 0, ``true`` as 1, a number as a date-time)."""

from datetime import datetime
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from interfaces.api.fields import DateTime
from interfaces.api.schemas import (
    CancelRequest,
    RequestCreate,
    RetryPolicyCreate,
    ServiceCallBatchCreate,
    ServiceCallCreate,
)
from interfaces.api.tenant_schemas import KeyLimits, Rotation, TenantCreate

REQUEST = {"url": "https://example.com/hook"}


def _refused(model: type[BaseModel], data: dict[str, Any]) -> dict[str, str]:
    """Field → message of each error."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return {".".join(map(str, e["loc"])): e["msg"] for e in caught.value.errors()}


def _call(**fields: Any) -> dict[str, Any]:
    return {"request": REQUEST, **fields}


def test_a_tag_of_200_characters_passes_and_one_longer_is_refused() -> None:
    assert ServiceCallCreate.model_validate(_call(tags=["t" * 200])).tags == ["t" * 200]
    errors = _refused(ServiceCallCreate, _call(tags=["ok", "t" * 4000]))
    assert errors == {"tags.1": "String should have at most 200 characters"}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (_call(name="a\x00"), "name"),
        (_call(tags=["a\x00"]), "tags.0"),
        (_call(correlation_id="\x00"), "correlation_id"),
        ({"request": {**REQUEST, "method": "P\x00ST"}}, "request.method"),
        ({"request": {**REQUEST, "url": "https://example.com/\x00"}}, "request.url"),
        ({"request": {**REQUEST, "secret_headers": ["X\x00"]}}, "request.secret_headers.0"),
        ({"request": {**REQUEST, "body": "a\x00"}}, "request.body"),
        ({"request": {**REQUEST, "body": "\ud800"}}, "request.body"),
        ({"request": {**REQUEST, "body": {"a": ["b", "c\x00"]}}}, "request.body"),
        ({"request": {**REQUEST, "body": {"k\x00": 1}}}, "request.body"),
        ({"request": {**REQUEST, "body": {"k": {"\udfff": 1}}}}, "request.body"),
        (_call(retry_policy={"retry_on": ["5xx\x00"]}), "retry_policy.retry_on.0"),
    ],
)
def test_nul_and_lone_surrogates_are_refused_in_every_text_field(
    data: dict[str, Any], field: str
) -> None:
    assert field in _refused(ServiceCallCreate, data)


def test_nul_is_refused_in_batch_keys_cancel_reasons_and_tenant_names() -> None:
    batch = {"calls": [_call(idempotency_key="k\x00")]}
    assert "calls.0.idempotency_key" in _refused(ServiceCallBatchCreate, batch)
    assert "reason" in _refused(CancelRequest, {"reason": "why\x00"})
    assert "name" in _refused(TenantCreate, {"name": "a\x00"})


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_in_a_json_body_are_refused_single_and_batch(number: float) -> None:
    body = {"request": {**REQUEST, "body": {"amount": [1, {"x": number}]}}}
    assert _refused(ServiceCallCreate, body) == {
        "request.body": "Value error, NaN and Infinity are not JSON numbers"
    }
    assert "calls.0.request.body" in _refused(ServiceCallBatchCreate, {"calls": [body]})


def test_a_json_body_is_encoded_as_strict_json() -> None:
    request = RequestCreate.model_validate({**REQUEST, "body": {"a": [1.5, "é", None]}})
    assert request.encoded()[1] == '{"a":[1.5,"\\u00e9",null]}'
    request.body = {"a": float("nan")}  # past validation (models are not frozen)
    with pytest.raises(ValueError, match="not JSON compliant"):
        request.encoded()


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (RetryPolicyCreate, {"initial_backoff_seconds": False}, "initial_backoff_seconds"),
        (RetryPolicyCreate, {"max_attempts": True}, "max_attempts"),
        (RetryPolicyCreate, {"multiplier": "2"}, "multiplier"),
        (RetryPolicyCreate, {"max_retry_duration_seconds": float("inf")},
         "max_retry_duration_seconds"),
        (Rotation, {"grace_seconds": False}, "grace_seconds"),
        (KeyLimits, {"burst": True}, "burst"),
        (KeyLimits, {"rate_per_second": True}, "rate_per_second"),
        (ServiceCallCreate, _call(delay_seconds=True), "delay_seconds"),
        (ServiceCallCreate, _call(due_at=1_900_000_000), "due_at"),
        (ServiceCallCreate, {"request": {**REQUEST, "timeout_seconds": True}},
         "request.timeout_seconds"),
        (ServiceCallCreate, {"request": {**REQUEST, "follow_redirects": 1}},
         "request.follow_redirects"),
        (ServiceCallCreate, {"request": {**REQUEST, "follow_redirects": "true"}},
         "request.follow_redirects"),
    ],
)
def test_booleans_numbers_and_date_times_are_not_coerced_from_other_types(
    model: type[BaseModel], data: dict[str, Any], field: str
) -> None:
    assert field in _refused(model, data)


def test_a_number_takes_an_integer_and_an_integer_field_only_an_integer() -> None:
    policy = RetryPolicyCreate.model_validate({"initial_backoff_seconds": 2, "max_attempts": 3})
    assert (policy.initial_backoff_seconds, policy.max_attempts) == (2.0, 3)
    assert "max_attempts" in _refused(RetryPolicyCreate, {"max_attempts": 3.5})
    assert Rotation.model_validate({"grace_seconds": 0}).grace_seconds == 0
    assert KeyLimits.model_validate({"burst": 10}).burst == 10


@pytest.mark.parametrize("text", ["0.5", "1700000000", "", "soon"])
def test_a_date_time_query_value_must_be_rfc_3339(text: str) -> None:
    with pytest.raises(ValidationError, match="RFC 3339"):
        TypeAdapter(DateTime).validate_python(text)


def test_an_rfc_3339_query_value_passes() -> None:
    parsed = TypeAdapter(DateTime).validate_python("2030-01-02T03:04:05Z")
    assert parsed.isoformat() == "2030-01-02T03:04:05+00:00"
    assert isinstance(parsed, datetime)


@pytest.mark.parametrize("whole", [1.0, 10.0, 1e6])
def test_an_integer_field_takes_a_number_with_no_fraction(whole: float) -> None:
    """JSON Schema counts 1.0 as an integer, and so does the API (schemathesis sends it)."""
    assert KeyLimits.model_validate_json(f'{{"burst": {whole}}}').burst == int(whole)
    policy = RetryPolicyCreate.model_validate({"max_attempts": min(whole, 50.0)})
    assert policy.max_attempts == min(int(whole), 50)
    assert isinstance(policy.max_attempts, int)


@pytest.mark.parametrize(
    "raw", ["true", "false", '"3"', "3.5", "1e400", "-1e400", "null"]
)
def test_an_integer_field_still_refuses_booleans_strings_and_fractions(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RetryPolicyCreate.model_validate_json(f'{{"max_attempts": {raw}}}')
    assert [e["loc"] for e in caught.value.errors()] == [("max_attempts",)]


def test_an_optional_integer_field_keeps_its_bounds_and_takes_null() -> None:
    assert KeyLimits.model_validate_json('{"burst": null}').burst is None
    assert "burst" in _refused(KeyLimits, {"burst": 0.0})
    assert "burst" in _refused(KeyLimits, {"burst": 1_000_001.0})
    assert "burst" in _refused(KeyLimits, {"burst": True})
