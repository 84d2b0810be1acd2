"""The request's size limits (URL, header count, body) and its redirect option, as the domain
holds them: each limit names its field, a value at the limit passes, one over it does not."""

import pytest

from domain.errors import InvalidRequestError, RequestTooLargeError
from domain.headers import MAX_HEADERS
from domain.request import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_URL_LENGTH,
    RequestSpec,
    check_body_size,
)

BASE = "https://api.example.com/"


def _url(length: int) -> str:
    return BASE + "a" * (length - len(BASE))


def test_a_url_of_2048_characters_passes_and_one_more_is_refused_naming_the_url() -> None:
    assert MAX_URL_LENGTH == 2048
    assert len(RequestSpec("GET", _url(2048)).url) == 2048
    with pytest.raises(InvalidRequestError) as caught:
        RequestSpec("GET", _url(2049))
    assert caught.value.field == "request.url"
    assert "at most 2048 characters" in caught.value.message


def test_64_headers_pass_and_65_are_refused_naming_the_headers() -> None:
    assert MAX_HEADERS == 64
    headers = {f"X-H{i}": "v" for i in range(64)}
    assert len(RequestSpec("GET", BASE, headers).headers) == 64
    with pytest.raises(InvalidRequestError) as caught:
        RequestSpec("GET", BASE, {**headers, "X-One-More": "v"})
    assert caught.value.field == "request.headers"
    assert "at most 64 headers (65 given)" in caught.value.message


def test_a_body_up_to_the_limit_passes_and_a_larger_one_is_too_large() -> None:
    assert DEFAULT_MAX_BODY_BYTES == 1024 * 1024
    check_body_size(None, 10)
    check_body_size("x" * 10, 10)
    with pytest.raises(RequestTooLargeError) as caught:
        check_body_size("x" * 11, 10)
    assert caught.value.field == "request.body"
    assert "is 11 bytes; at most 10 bytes" in caught.value.message
    assert isinstance(caught.value, InvalidRequestError)


def test_the_body_limit_counts_bytes_as_sent_not_characters() -> None:
    check_body_size("é" * 5, 10)  # 10 bytes in UTF-8
    with pytest.raises(RequestTooLargeError, match="is 12 bytes"):
        check_body_size("é" * 6, 10)


def test_follow_redirects_is_off_unless_asked_and_survives_recording() -> None:
    assert RequestSpec("GET", BASE).follow_redirects is False
    spec = RequestSpec("GET", BASE, follow_redirects=True)
    recorded = spec.as_dict()
    assert recorded["follow_redirects"] is True
    assert RequestSpec.restored(**recorded) == spec

