"""A definition's literal secret header values are sealed before the run records it; a
templated one is left for its call to seal; a sealed value is never sealed twice."""

from typing import Any

from domain.workflow_secrets import seal_once, sealed_definition


def seal(value: str) -> str:
    return f"enc:v1:{value[::-1]}"


def _definition(compensate: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "n",
        "steps": [
            {
                "id": "a",
                "request": {
                    "method": "GET",
                    "url": "https://x.example/",
                    "headers": {
                        "Authorization": "Bearer secret",
                        "X-Signature": "sig",
                        "X-Plain": "visible",
                        "X-Api-Key": "{{ input.key }}",
                    },
                    "secret_headers": ["x-signature"],
                },
                "compensate": compensate,
            }
        ],
    }


def test_literal_secret_values_are_sealed_and_the_rest_left_as_given() -> None:
    given = _definition({"method": "POST", "url": "https://x.example/undo",
                         "headers": {"Cookie": "c=1"}})
    sealed = sealed_definition(given, seal)
    headers = sealed["steps"][0]["request"]["headers"]
    assert headers == {
        "Authorization": seal("Bearer secret"),
        "X-Signature": seal("sig"),  # listed in secret_headers, in any case
        "X-Plain": "visible",
        "X-Api-Key": "{{ input.key }}",  # templated: its call seals it once rendered
    }
    assert sealed["steps"][0]["compensate"]["headers"] == {"Cookie": seal("c=1")}
    assert given["steps"][0]["request"]["headers"]["Authorization"] == "Bearer secret"  # a copy
    assert sealed_definition(sealed, seal) == sealed  # sealed values stay as they are


def test_a_compensation_with_its_own_request_is_sealed_too() -> None:
    compensate = {"request": {"method": "POST", "url": "https://x.example/undo",
                              "headers": {"authorization": "k"}}, "retry_policy": {}}
    sealed = sealed_definition(_definition(compensate), seal)
    assert sealed["steps"][0]["compensate"]["request"]["headers"] == {"authorization": seal("k")}


def test_a_definition_of_the_wrong_shape_is_left_for_its_checks() -> None:
    odd: dict[str, Any] = {"name": "n", "steps": [1, {"id": "a", "request": "GET /"},
                                                  {"request": {"headers": []}}]}
    assert sealed_definition(odd, seal) == odd
    assert sealed_definition({"steps": "none"}, seal) == {"steps": "none"}


def test_seal_once_leaves_a_sealed_value() -> None:
    once = seal_once(seal)
    assert once("x") == seal("x")
    assert once(seal("x")) == seal("x")
