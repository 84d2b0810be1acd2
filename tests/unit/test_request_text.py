"""Text the request holds must be storable and sendable: no NUL, no lone surrogates, no
credentials in the URL, bounded secret header names."""

import pytest

from domain.errors import InvalidRequestError
from domain.request import MAX_SECRET_HEADER_NAME_LENGTH, RequestSpec
from domain.text import check_text, text_problem

URL = "https://api.example.com/hook"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a\x00b", "cannot contain NUL characters"),
        ("a\ud800b", "cannot contain lone surrogates (U+D800 to U+DFFF)"),
        ("\udfff", "cannot contain lone surrogates (U+D800 to U+DFFF)"),
    ],
)
def test_nul_and_lone_surrogates_are_refused_naming_the_field(value: str, problem: str) -> None:
    assert text_problem(value) == problem
    with pytest.raises(InvalidRequestError) as caught:
        check_text("name", value)
    assert (caught.value.field, caught.value.message) == ("name", problem)


@pytest.mark.parametrize("value", ["", "plain", "tab\tnewline\n", "日本語", "😀", "\x01"])
def test_other_text_passes(value: str) -> None:
    assert text_problem(value) is None


@pytest.mark.parametrize("body", ["a\x00b", "\ud83d", "ok \udc00"])
def test_a_body_with_nul_or_a_lone_surrogate_is_refused(body: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        RequestSpec("POST", URL, body=body)
    assert caught.value.field == "request.body"


def test_a_url_with_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        RequestSpec("GET", URL + "/\ud800")
    assert caught.value.field == "request.url"


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:S3CRET@example.com/",
        "https://alice@example.com/",
        "https://:pw@example.com:8443/x",
        "http://@example.com/",
    ],
)
def test_credentials_in_the_url_are_refused_pointing_to_a_secret_header(url: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        RequestSpec("GET", url)
    assert caught.value.field == "request.url"
    assert "Authorization header" in caught.value.message
    assert "secret_headers" in caught.value.message
    assert "S3CRET" not in str(caught.value)


def test_an_at_sign_in_the_path_or_query_is_not_a_credential() -> None:
    url = "https://example.com/users/a@b.c?mail=x@y.z"
    assert RequestSpec("GET", url).url == url


def test_a_secret_header_name_longer_than_the_limit_is_refused() -> None:
    name = "X" * MAX_SECRET_HEADER_NAME_LENGTH
    assert RequestSpec("GET", URL, secret_headers=(name,)).secret_headers == (name.lower(),)
    with pytest.raises(InvalidRequestError) as caught:
        RequestSpec("GET", URL, secret_headers=(name + "X",))
    assert caught.value.field == "request.secret_headers"
