"""The HTTP request a service call makes: a validated value object."""

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from domain.errors import InvalidRequestError, RequestTooLargeError
from domain.headers import TOKEN, check_headers
from domain.redaction import is_sealed, secret_header_names
from domain.text import check_text

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
DEFAULT_TIMEOUT_SECONDS = 30.0
MIN_TIMEOUT_SECONDS = 1.0
MAX_TIMEOUT_SECONDS = 30 * 60.0
MAX_URL_LENGTH = 2048
DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # the deployment may set its own (check_body_size); see README
MAX_SECRET_HEADERS = 64
MAX_SECRET_HEADER_NAME_LENGTH = 256


@dataclass(frozen=True)
class RequestSpec:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    follow_redirects: bool = False
    # more header names whose values are secret (besides domain.redaction.SENSITIVE_HEADERS):
    # lower-cased; their values are sealed at rest and redacted on the way out
    secret_headers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.upper())
        if self.method not in METHODS:
            raise InvalidRequestError("request.method", f"must be one of {sorted(METHODS)}")
        _check_url(self.url)
        if not MIN_TIMEOUT_SECONDS <= self.timeout_seconds <= MAX_TIMEOUT_SECONDS:
            raise InvalidRequestError(
                "request.timeout_seconds",
                f"must be between {MIN_TIMEOUT_SECONDS:g} and {MAX_TIMEOUT_SECONDS:g} seconds",
            )
        check_headers(self.headers)
        if self.body is not None:
            check_text("request.body", self.body)
        object.__setattr__(self, "secret_headers", _check_secret_headers(self.secret_headers))

    @classmethod
    def restored(
        cls,
        method: str,
        url: str,
        headers: dict[str, str],
        body: str | None,
        timeout_seconds: float,
        follow_redirects: bool,
        secret_headers: Iterable[str],
    ) -> "RequestSpec":
        """A spec rebuilt from recorded events, which were validated when first made."""
        spec = object.__new__(cls)
        for name, value in (
            ("method", method),
            ("url", url),
            ("headers", headers),
            ("body", body),
            ("timeout_seconds", timeout_seconds),
            ("follow_redirects", follow_redirects),
            ("secret_headers", tuple(secret_headers)),
        ):
            object.__setattr__(spec, name, value)
        return spec

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "headers": self.headers,
            "body": self.body,
            "timeout_seconds": self.timeout_seconds,
            "follow_redirects": self.follow_redirects,
            "secret_headers": list(self.secret_headers),
        }

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def secret_names(self) -> frozenset[str]:
        """The lower-cased names of the headers whose values are secret."""
        return secret_header_names(self.secret_headers)

    def sealed(self, seal: Callable[[str], str]) -> "RequestSpec":
        """This request with the values of its secret headers sealed (to be recorded); itself
        when it has none (immutable: nothing to copy)."""
        names = self.secret_names
        if not any(name.lower() in names for name in self.headers):
            return self
        return self._with_secret_values(seal, lambda value: True)

    def opened(self, open_: Callable[[str], str]) -> "RequestSpec":
        """This request with the sealed values of its secret headers opened (to be sent);
        values recorded in clear (before sealing existed) are left as they are."""
        return self._with_secret_values(open_, is_sealed)

    def _with_secret_values(
        self, change: Callable[[str], str], which: Callable[[str], bool]
    ) -> "RequestSpec":
        names = self.secret_names
        headers = {
            name: change(value) if name.lower() in names and which(value) else value
            for name, value in self.headers.items()
        }
        spec = copy.copy(self)  # already validated: no second check of the changed values
        object.__setattr__(spec, "headers", headers)
        return spec


def check_body_size(body: str | None, max_bytes: int) -> None:
    """The body to send (UTF-8) is at most ``max_bytes``: a deployment's limit, checked at
    submit by the caller that knows it (RequestSpec itself has no configuration)."""
    if body is None or len(body) * 4 <= max_bytes:  # no character takes more than 4 bytes
        return
    size = len(body.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise RequestTooLargeError(
            "request.body", f"is {size} bytes; at most {max_bytes} bytes may be sent"
        )


def _check_secret_headers(names: Iterable[str]) -> tuple[str, ...]:
    """Valid header names, at most ``MAX_SECRET_HEADERS``: lower-cased, each once."""
    names = list(names)
    if len(names) > MAX_SECRET_HEADERS:
        raise InvalidRequestError(
            "request.secret_headers", f"at most {MAX_SECRET_HEADERS} names ({len(names)} given)"
        )
    for name in names:
        if (
            not isinstance(name, str)
            or len(name) > MAX_SECRET_HEADER_NAME_LENGTH
            or not TOKEN.fullmatch(name)
        ):
            raise InvalidRequestError("request.secret_headers", f"invalid header name {name!r}")
    return tuple(dict.fromkeys(name.lower() for name in names))


def _check_url(url: str) -> None:
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRequestError(
            "request.url", f"at most {MAX_URL_LENGTH} characters ({len(url)} given)"
        )
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidRequestError("request.url", "cannot contain whitespace or control characters")
    check_text("request.url", url)
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced or invalid [IPv6] literal
        raise InvalidRequestError("request.url", "is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRequestError("request.url", "must be an absolute http(s) URL")
    if not parts.hostname:
        raise InvalidRequestError("request.url", "must name a host")
    if "@" in parts.netloc:  # they would be stored, shown and logged in clear
        raise InvalidRequestError(
            "request.url",
            "cannot hold credentials (user:password@); send them in an Authorization header "
            "(always stored encrypted and redacted; list other secret headers in "
            "secret_headers)",
        )
    try:
        _ = parts.port
    except ValueError:
        raise InvalidRequestError("request.url", "has an invalid port") from None
