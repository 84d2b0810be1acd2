"""The HTTP request a service call makes: a validated value object."""

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from domain.errors import InvalidRequestError

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
DEFAULT_TIMEOUT_SECONDS = 30.0
MIN_TIMEOUT_SECONDS = 1.0
MAX_TIMEOUT_SECONDS = 30 * 60.0


@dataclass(frozen=True)
class RequestSpec:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

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
        for name in self.headers:
            if not name or any(c in name for c in " :\r\n"):
                raise InvalidRequestError("request.headers", f"invalid header name {name!r}")
        for value in self.headers.values():
            if "\r" in value or "\n" in value:
                raise InvalidRequestError("request.headers", "header values cannot hold newlines")

    @classmethod
    def restored(
        cls,
        method: str,
        url: str,
        headers: dict[str, str],
        body: str | None,
        timeout_seconds: float,
    ) -> "RequestSpec":
        """A spec rebuilt from recorded events, which were validated when first made."""
        spec = object.__new__(cls)
        for name, value in (
            ("method", method),
            ("url", url),
            ("headers", headers),
            ("body", body),
            ("timeout_seconds", timeout_seconds),
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
        }

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""


def _check_url(url: str) -> None:
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidRequestError("request.url", "cannot contain whitespace or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidRequestError("request.url", "must be an absolute http(s) URL")
    if not parts.hostname:
        raise InvalidRequestError("request.url", "must name a host")
    try:
        _ = parts.port
    except ValueError:
        raise InvalidRequestError("request.url", "has an invalid port") from None
