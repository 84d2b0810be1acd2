"""Secrets out of recorded payloads, on the way out (events are stored as they were recorded).

The values of secret HTTP headers, wherever a payload carries headers (a call's request, an
execution's request and response): the credential-bearing names (``SENSITIVE_HEADERS``), any
name a call lists in its ``secret_headers`` (it applies to the headers beside it and below
it), and any value that was sealed for storage (``enc:v1:...``, wherever it is: ciphertext is
never shown as if it were the value).
"""

from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
SEALED_PREFIX = "enc:v1:"  # a value sealed at rest (see application.ports.SecretBox)
SECRET_HEADERS_KEY = "secret_headers"  # where a payload lists its own secret header names
MIN_SCRUBBED_LENGTH = 6  # shorter words of a secret value are not cut out of free text


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def secret_header_names(extra: Iterable[str] = ()) -> frozenset[str]:
    """The always-secret names and ``extra``, lower-cased (header names ignore case)."""
    return SENSITIVE_HEADERS | {name.lower() for name in extra}


def redact_headers(headers: Mapping[str, Any], secret: Iterable[str] = ()) -> dict[str, Any]:
    """The headers with the values of secret ones (and sealed ones) replaced by ``[REDACTED]``;
    ``secret``: more names to treat as secret, besides ``SENSITIVE_HEADERS``."""
    names = secret_header_names(secret)
    return {
        name: REDACTED if name.lower() in names or is_sealed(value) else value
        for name, value in headers.items()
    }


def redact_payload(payload: Mapping[str, Any], secret: Iterable[str] = ()) -> dict[str, Any]:
    """The payload with the secret values of every ``*headers`` mapping (at any depth), and
    every sealed value, replaced by ``[REDACTED]``."""
    names = secret_header_names([*secret, *_listed(payload.get(SECRET_HEADERS_KEY))])
    return {key: _redact(key, value, names) for key, value in payload.items()}


def secret_values(headers: Mapping[str, str], names: Iterable[str]) -> list[str]:
    """The values of the headers named (case-insensitively) in ``names``, and the longer
    words after the first (a target may quote only the token of ``Bearer <token>``; the
    scheme is no secret); longest first."""
    wanted = {name.lower() for name in names}
    found: set[str] = set()
    for name, value in headers.items():
        if name.lower() in wanted and value:
            found.add(value)
            words = value.split()[1:]
            found.update(word for word in words if len(word) >= MIN_SCRUBBED_LENGTH)
    return sorted(found, key=len, reverse=True)


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``[REDACTED]``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _listed(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


def _redact(key: str, value: Any, names: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        if key.endswith("headers"):
            return redact_headers(value, names)
        return redact_payload(value, names)
    if isinstance(value, list):
        return [_redact(key, item, names) for item in value]
    return REDACTED if is_sealed(value) else value
