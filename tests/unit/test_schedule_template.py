"""A schedule's call template: checked as a call's submission is, sealed and redacted."""

from typing import Any

import pytest

from domain.errors import InvalidRequestError
from domain.retry_policy import RetryPolicy
from domain.schedule_template import (
    check_call_template,
    redacted_template,
    sealed_template,
    template_request,
    template_retry_policy,
)

TEMPLATE: dict[str, Any] = {
    "request": {
        "method": "put",
        "url": "https://api.example.com/sync",
        "headers": {"Authorization": "Bearer s3cret", "X-Trace": "t"},
        "body": '{"full": true}',
        "timeout_seconds": 12,
        "follow_redirects": True,
        "secret_headers": ["X-Trace"],
    },
    "retry_policy": {"max_attempts": 3, "jitter": "none"},
    "tags": ["nightly"],
}


def test_a_template_is_normalised_as_a_call_would_be() -> None:
    template = check_call_template(TEMPLATE)
    assert template["request"]["method"] == "PUT"
    assert template["request"]["timeout_seconds"] == 12.0
    assert template["request"]["secret_headers"] == ["x-trace"]
    assert template["retry_policy"] == RetryPolicy(max_attempts=3, jitter="none").as_dict()  # type: ignore[arg-type]
    assert check_call_template(template) == template  # idempotent: recorded as checked
    request = template_request(template)
    assert (request.method, request.host, request.follow_redirects) == (
        "PUT",
        "api.example.com",
        True,
    )
    assert template_retry_policy(template) == RetryPolicy(max_attempts=3, jitter="none")  # type: ignore[arg-type]
    assert template_retry_policy({**template, "retry_policy": None}) is None


def test_minimal_template_takes_the_call_defaults() -> None:
    template = check_call_template({"request": {"method": "GET", "url": "https://a.example"}})
    assert template == {
        "request": {
            "method": "GET",
            "url": "https://a.example",
            "headers": {},
            "body": None,
            "timeout_seconds": 30.0,
            "follow_redirects": False,
            "secret_headers": [],
        },
        "retry_policy": None,
        "tags": [],
    }


def test_secret_values_are_sealed_for_the_record_and_redacted_for_show() -> None:
    template = check_call_template(TEMPLATE)
    sealed = sealed_template(template, lambda value: f"enc:v1:{value[::-1]}")
    headers = sealed["request"]["headers"]
    assert headers == {"Authorization": "enc:v1:terc3s reraeB", "X-Trace": "enc:v1:t"}
    assert template["request"]["headers"]["X-Trace"] == "t"  # the original is unchanged
    shown = redacted_template(template)["request"]["headers"]
    assert shown == {"Authorization": "[REDACTED]", "X-Trace": "[REDACTED]"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"request": None}, "call.request"),
        ({"request": {**TEMPLATE["request"], "body": {"a": 1}}}, "call.request.body"),
        (
            {"request": {**TEMPLATE["request"], "follow_redirects": "yes"}},
            "call.request.follow_redirects",
        ),
        (
            {"request": {**TEMPLATE["request"], "timeout_seconds": True}},
            "call.request.timeout_seconds",
        ),
        (
            {"request": {**TEMPLATE["request"], "timeout_seconds": 0.5}},
            "call.request.timeout_seconds",
        ),
        ({"request": {**TEMPLATE["request"], "url": "https://a.example/\x00"}}, "call.request.url"),
        ({"request": {**TEMPLATE["request"], "headers": {"X": 1}}}, "call.request.headers"),
        (
            {"request": {**TEMPLATE["request"], "secret_headers": ["bad name"]}},
            "call.request.secret_headers",
        ),
        ({"request": {**TEMPLATE["request"], "verb": "GET"}}, "call.request.verb"),
        ({"retry_policy": []}, "call.retry_policy"),
        ({"retry_policy": {"retry_on": ["teapot"]}}, "call.retry_policy.retry_on"),
        ({"tags": ["x" * 201]}, "call.tags"),
        ({"tags": ["a\x00"]}, "call.tags"),
        ({"tags": ["t"] * 51}, "call.tags"),
    ],
)
def test_errors_name_the_field_under_call(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_call_template({**TEMPLATE, **change})
    assert caught.value.field == field


def test_a_template_must_be_an_object() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_call_template(["request"])
    assert caught.value.field == "call"
