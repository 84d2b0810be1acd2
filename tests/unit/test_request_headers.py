"""The headers a call may send: RFC 9110 names, sendable values, names duecall keeps for
itself (any case), and a cap on their total size."""

from collections.abc import Callable

import pytest

from domain.errors import InvalidRequestError, RequestTooLargeError
from domain.headers import DEFAULT_MAX_HEADER_BYTES, check_header_size
from domain.request import RequestSpec
from infrastructure.settings import Settings

URL = "https://api.example.com/hook"
RESERVED = [
    "Host", "Content-Length", "Transfer-Encoding", "Connection", "Expect", "TE", "Upgrade",
    "Keep-Alive", "Proxy-Connection", "Trailer", "Idempotency-Key", "traceparent",
    "tracestate", "Duecall-Id", "Duecall-Signature", "Duecall-Timestamp", "Duecall-Anything",
]


def _refused(headers: dict[str, str]) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        RequestSpec("POST", URL, headers)
    assert caught.value.field == "request.headers"
    return caught.value


@pytest.mark.parametrize("name", ["X\tTab", "X(Paren)", "X-Ü", "X\x00", "X\ud800", "X@", ""])
def test_a_header_name_that_is_not_an_rfc_9110_token_is_refused(name: str) -> None:
    assert "RFC 9110 token" in _refused({name: "v"}).message


@pytest.mark.parametrize(
    "value", ["a\x0bb", "a\x7fb", "a\x00b", "a\rb", "a\nb", "\x1f", "日本", "a\ud800", "€"]
)
def test_a_header_value_with_control_or_non_latin_1_characters_is_refused(value: str) -> None:
    error = _refused({"X-Value": value})
    assert "visible Latin-1" in error.message
    assert value not in error.message  # a value may be secret: never quoted back


@pytest.mark.parametrize("value", ["a\tb", "café", " spaced ", "~!@#$%^&*()", ""])
def test_tabs_spaces_visible_ascii_and_latin_1_values_pass(value: str) -> None:
    assert RequestSpec("POST", URL, {"X-Value": value}).headers == {"X-Value": value}


@pytest.mark.parametrize("name", RESERVED)
@pytest.mark.parametrize("spelling", [str.lower, str.upper, str.title])
def test_framing_and_duecall_headers_are_refused_in_any_case(
    name: str, spelling: Callable[[str], str]
) -> None:
    assert "set by duecall" in _refused({spelling(name): "x"}).message


def test_a_header_merely_starting_like_a_reserved_one_passes() -> None:
    headers = {"Hosts": "a", "X-Duecall-Id": "b", "Content-Type": "c", "Traceparent-X": "d"}
    assert RequestSpec("POST", URL, headers).headers == headers


def test_header_bytes_up_to_the_limit_pass_and_more_are_too_large() -> None:
    assert DEFAULT_MAX_HEADER_BYTES == Settings().max_request_header_bytes == 32 * 1024
    check_header_size({"X-A": "v" * 7}, 10)  # 3 + 7 bytes: names count too
    with pytest.raises(RequestTooLargeError) as caught:
        check_header_size({"X-A": "v" * 4, "X-B": "v" * 4}, 10)
    assert caught.value.field == "request.headers"
    assert "are 14 bytes (names and values); at most 10 bytes" in caught.value.message


def test_thirty_headers_of_a_mebibyte_each_are_too_large_by_default() -> None:
    headers = {f"X-H{i}": "v" * 1024 * 1024 for i in range(30)}
    with pytest.raises(RequestTooLargeError):
        check_header_size(RequestSpec("POST", URL, headers).headers, DEFAULT_MAX_HEADER_BYTES)


def test_the_header_limit_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUECALL_MAX_REQUEST_HEADER_BYTES", "100")
    assert Settings().max_request_header_bytes == 100


def test_a_recorded_request_with_a_reserved_header_is_restored_as_it_was() -> None:
    """Records made before the rule stay readable (the sender drops such headers)."""
    restored = RequestSpec.restored(
        "POST", URL, {"Transfer-Encoding": "chunked"}, None, 30.0, False, ()
    )
    assert restored.headers == {"Transfer-Encoding": "chunked"}
