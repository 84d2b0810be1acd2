"""On a real `duecall serve`, over real HTTP: refusals are problem+json with what RFC 9110 asks
for (``Allow`` on 405), and the event stream bounds where a client may resume."""

import httpx
import pytest

pytestmark = pytest.mark.e2e

STREAM = "/v1/events/stream"
BEYOND_INT64 = str(2**63)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("TRACE", "/v1/service-calls", "GET, POST"), ("PATCH", "/v1/retry-policy", "GET, PUT")],
)
def test_an_unsupported_method_answers_405_with_allow(
    api: httpx.Client, method: str, path: str, allow: str
) -> None:
    answer = api.request(method, path)

    assert answer.status_code == 405
    assert answer.headers["allow"] == allow
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("params", "headers", "field"),
    [
        ({"after": BEYOND_INT64}, {}, "after"),
        ({"last_event_id": BEYOND_INT64}, {}, "last_event_id"),
        ({}, {"Last-Event-ID": BEYOND_INT64}, "Last-Event-ID"),
    ],
)
def test_a_resume_position_beyond_64_bits_is_422_naming_the_field(
    api: httpx.Client, params: dict[str, str], headers: dict[str, str], field: str
) -> None:
    answer = api.get(STREAM, params=params, headers=headers)

    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == [field]


def test_a_resume_position_beyond_the_head_opens_at_the_head(api: httpx.Client) -> None:
    beyond = 2**63 - 1
    with api.stream("GET", STREAM, params={"after": beyond}) as answer:
        assert answer.status_code == 200
        lines = answer.iter_lines()
        assert next(lines) == "retry: 1000"
        opening = next(lines)

    assert opening.startswith("id: ")
    assert 0 <= int(opening.removeprefix("id: ")) < beyond
