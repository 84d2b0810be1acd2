"""RequestSpec: the validated HTTP request of a service call."""

from __future__ import annotations

import pytest

from domain.errors import DomainError, InvalidRequestError
from domain.request import (
    DEFAULT_TIMEOUT_SECONDS,
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
    RequestSpec,
)

URL = "https://api.example.com/hooks/1"


def test_method_is_upper_cased() -> None:
    assert RequestSpec("post", URL).method == "POST"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
def test_every_supported_method_is_accepted(method: str) -> None:
    assert RequestSpec(method.lower(), URL).method == method


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "FETCH", "", "G E T"])
def test_unknown_method_is_rejected_naming_the_method_field(method: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        RequestSpec(method, URL)
    assert caught.value.field == "request.method"
    assert str(caught.value).startswith("request.method: ")


def test_invalid_request_error_is_a_domain_error() -> None:
    with pytest.raises(DomainError):
        RequestSpec("BREW", URL)


def test_defaults_are_no_headers_no_body_and_the_default_timeout() -> None:
    spec = RequestSpec("GET", URL)
    assert spec.headers == {}
    assert spec.body is None
    assert spec.timeout_seconds == DEFAULT_TIMEOUT_SECONDS


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "https://example.com/a/b?c=d#e",
        "http://127.0.0.1:8080/hook",
        "http://[::1]:9000/x",
    ],
)
def test_absolute_http_and_https_urls_are_accepted(url: str) -> None:
    assert RequestSpec("GET", url).url == url


@pytest.mark.parametrize(
    "url",
    [
        "/relative/path",
        "example.com/hook",
        "//example.com/hook",
        "ftp://example.com/file",
        "file:///etc/passwd",
        "mailto:someone@example.com",
        "http://",
        "http:///path-only",
        "https://:443/no-host",
        "",
    ],
)
def test_relative_non_http_and_hostless_urls_are_rejected(url: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        RequestSpec("GET", url)
    assert caught.value.field == "request.url"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com:99999/",
        "http://example.com:65536/",
        "http://example.com:abc/",
        "http://example.com:-1/",
    ],
)
def test_urls_with_a_bad_port_are_rejected(url: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        RequestSpec("GET", url)
    assert caught.value.field == "request.url"



@pytest.mark.parametrize("url", ["http://a]b/", "http://[:::]/", "http://[::1/"])
def test_urls_python_cannot_split_are_rejected_naming_the_field(url: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        RequestSpec("GET", url)
    assert caught.value.field == "request.url"

@pytest.mark.parametrize(
    "timeout", [MIN_TIMEOUT_SECONDS, 1.0, 2.5, 30.0, MAX_TIMEOUT_SECONDS, 1800.0]
)
def test_timeouts_between_one_second_and_thirty_minutes_inclusive_are_accepted(
    timeout: float,
) -> None:
    assert RequestSpec("GET", URL, timeout_seconds=timeout).timeout_seconds == timeout


@pytest.mark.parametrize("timeout", [0.0, 0.999, -1.0, 1800.001, 3600.0, float("nan")])
def test_timeouts_outside_the_bounds_are_rejected(timeout: float) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        RequestSpec("GET", URL, timeout_seconds=timeout)
    assert caught.value.field == "request.timeout_seconds"


def test_ordinary_headers_are_accepted() -> None:
    headers = {"Authorization": "Bearer abc", "X-Trace-Id": "t-1", "Content-Type": "a/b; c=d"}
    assert RequestSpec("POST", URL, headers=headers).headers == headers


@pytest.mark.parametrize("name", ["X Bad", "X:Bad", "X-Bad\n", "X-Bad\r", "\nX-Injected", ""])
def test_header_names_with_space_colon_or_newline_are_rejected(name: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        RequestSpec("GET", URL, headers={name: "value"})
    assert caught.value.field == "request.headers"


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "line\nbreak", "carriage\rreturn"])
def test_header_values_with_cr_or_lf_are_rejected(value: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        RequestSpec("GET", URL, headers={"X-Ok": value})
    assert caught.value.field == "request.headers"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://api.example.com/hooks/1", "api.example.com"),
        ("http://API.Example.COM:8080/x", "api.example.com"),
        ("https://example.org:8443/", "example.org"),
        ("http://127.0.0.1:9000/", "127.0.0.1"),
        ("http://[::1]:9000/", "::1"),
    ],
)
def test_host_is_the_lower_cased_hostname_without_port_or_credentials(url: str, host: str) -> None:
    assert RequestSpec("GET", url).host == host


def test_request_spec_is_immutable() -> None:
    spec = RequestSpec("GET", URL)
    with pytest.raises(AttributeError):
        spec.method = "POST"  # type: ignore[misc]


@pytest.mark.parametrize(
    "url", ["http://example.com/a\r\nX-Evil: 1", "http://exa mple.com/", "http://example.com/\t"]
)
def test_url_with_whitespace_or_control_characters_is_rejected(url: str) -> None:
    with pytest.raises(InvalidRequestError) as error:
        RequestSpec("GET", url)
    assert error.value.field == "request.url"
