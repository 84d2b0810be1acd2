"""Request signatures, in the style of Stripe's and Svix's webhooks.

Every request carries ``Duecall-Id`` (the call's id, the same on every attempt),
``Duecall-Timestamp`` (Unix seconds when it was sent) and ``Duecall-Signature``: one
``v1,<base64 HMAC-SHA256>`` per signing secret in use, space-separated, over
``"<id>.<timestamp>." + body``. A target accepts the request if any signature matches one of
its secrets and the timestamp is recent.
"""

import base64
import hashlib
import hmac
from collections.abc import Sequence

ID_HEADER = "Duecall-Id"
TIMESTAMP_HEADER = "Duecall-Timestamp"
SIGNATURE_HEADER = "Duecall-Signature"
VERSION = "v1"


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(digest).decode()}"


def signature_headers(
    keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(signature(k, message_id, timestamp, body) for k in keys),
    }
