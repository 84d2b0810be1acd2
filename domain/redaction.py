"""Secrets out of recorded payloads, on the way out (events are stored as they were recorded).

For now: the values of credential-bearing HTTP headers, wherever a payload carries headers
(a call's request, an execution's request and response).
"""

from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)


def redact_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: REDACTED if name.lower() in SENSITIVE_HEADERS else value
        for name, value in headers.items()
    }


def redact_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload with the sensitive values of every ``*headers`` mapping (at any depth)
    replaced by ``[REDACTED]``."""
    return {key: _redact(key, value) for key, value in payload.items()}


def _redact(key: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return redact_headers(value) if key.endswith("headers") else redact_payload(value)
    if isinstance(value, list):
        return [_redact(key, item) for item in value]
    return value
