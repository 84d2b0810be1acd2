"""Rules for the headers a call sends: RFC 9110 names and values, names duecall keeps for
itself, and how many bytes they may take."""

import re
from collections.abc import Mapping

from domain.errors import InvalidRequestError, RequestTooLargeError

MAX_HEADERS = 64
DEFAULT_MAX_HEADER_BYTES = 32 * 1024  # the deployment may set its own (check_header_size)
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token: a valid header name
# a field value: HTAB, visible ASCII, space and obs-text (0x80-0xFF); no other control
# characters, no DEL, nothing beyond Latin-1 (it could not be sent)
_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# framing and connection headers: the HTTP client sets them from the request it sends
FRAMING = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "expect", "te", "upgrade",
    "keep-alive", "proxy-connection", "trailer",
})
# set by duecall on every attempt (Duecall-Id, -Timestamp, -Signature: any Duecall-* name)
OWN = frozenset({"idempotency-key", "traceparent", "tracestate"})
OWN_PREFIX = "duecall-"
_FIELD = "request.headers"


def is_reserved(name: str) -> bool:
    """A name the caller may not set: duecall frames the request and sets these itself."""
    lowered = name.lower()
    return lowered in FRAMING or lowered in OWN or lowered.startswith(OWN_PREFIX)


def check_headers(headers: Mapping[str, str]) -> None:
    """At most ``MAX_HEADERS``; each name a token and not reserved; each value sendable."""
    if len(headers) > MAX_HEADERS:
        raise InvalidRequestError(
            _FIELD, f"at most {MAX_HEADERS} headers ({len(headers)} given)"
        )
    for name, value in headers.items():
        if not TOKEN.fullmatch(name):
            raise InvalidRequestError(_FIELD, f"invalid header name {name!r} (an RFC 9110 token)")
        if is_reserved(name):
            raise InvalidRequestError(
                _FIELD, f"{name!r} is set by duecall (framing, Host, Idempotency-Key, "
                "traceparent and Duecall-* headers cannot be given)",
            )
        if not _VALUE.fullmatch(value):
            raise InvalidRequestError(
                _FIELD, f"the value of {name!r} may hold only tabs and visible Latin-1 "
                "characters (no control characters, no newlines)",
            )


def check_header_size(headers: Mapping[str, str], max_bytes: int) -> None:
    """Names and values (one byte a character: they are Latin-1) take at most ``max_bytes``:
    a deployment's limit, checked at submit like the body's (``check_body_size``)."""
    size = sum(len(name) + len(value) for name, value in headers.items())
    if size > max_bytes:
        raise RequestTooLargeError(
            _FIELD, f"are {size} bytes (names and values); at most {max_bytes} bytes may be sent"
        )
