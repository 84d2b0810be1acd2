"""Request signatures (checked by an independent implementation), key parsing, rate limits."""

import base64
import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import pytest

from application.rate_limit import TokenBucket
from application.tenants import parse_key, signing_key
from domain.signing import signature_headers


def _independent_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The lines docs/security.md shows a target."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['Duecall-Id']}.{headers['Duecall-Timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, s) for s in headers["Duecall-Signature"].split())


SECRET_A = "whsec_" + base64.b64encode(b"a" * 32).decode()
SECRET_B = "whsec_" + base64.b64encode(b"b" * 32).decode()


def test_a_signature_verifies_with_the_secret_and_not_after_tampering() -> None:
    body = b'{"order": 1}'
    headers = signature_headers([signing_key(SECRET_A)], "call-1", 1_700_000_000, body)
    assert headers["Duecall-Id"] == "call-1"
    assert headers["Duecall-Timestamp"] == "1700000000"
    assert _independent_verify(SECRET_A, headers, body)
    assert not _independent_verify(SECRET_B, headers, body)
    assert not _independent_verify(SECRET_A, headers, b'{"order": 2}')
    assert not _independent_verify(SECRET_A, {**headers, "Duecall-Timestamp": "1700000001"}, body)


def test_during_a_rotation_either_secret_verifies() -> None:
    keys = [signing_key(SECRET_B), signing_key(SECRET_A)]
    headers = signature_headers(keys, "call-1", 1_700_000_000, b"")
    assert len(headers["Duecall-Signature"].split()) == 2
    assert _independent_verify(SECRET_A, headers, b"")
    assert _independent_verify(SECRET_B, headers, b"")


@pytest.mark.parametrize(
    ("token", "parsed"),
    [
        ("dc_acme_0a1b2c3d_s3_cr-et", ("acme", "0a1b2c3d", "s3_cr-et")),
        ("dc_my-tenant_k_x", ("my-tenant", "k", "x")),
        ("dc_acme_0a1b2c3d", None),
        ("xx_acme_k_secret", None),
        ("dc__k_secret", None),
        ("", None),
    ],
)
def test_keys_are_parsed(token: str, parsed: tuple[str, str, str] | None) -> None:
    result = parse_key(token)
    assert (None if result is None else (result.tenant, result.key_id, result.secret)) == parsed


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=3)
    now = bucket.updated
    assert [bucket.take(now) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(now) == pytest.approx(0.1)
    assert bucket.take(now + 0.11) == 0.0
    assert bucket.take(now + 10.0) == 0.0
    assert bucket.tokens == pytest.approx(2.0)  # refilled to the burst, not beyond


def test_the_documented_verification_snippet_accepts_a_fresh_signature_only() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    snippet = doc.split("A target verifies it like this:\n\n```python\n")[1].split("```")[0]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # the documented code, as a target would paste it
    verify = namespace["verify"]
    body = b'{"order": 1}'
    headers = signature_headers([signing_key(SECRET_A)], "call-1", int(time.time()), body)
    assert verify(SECRET_A, headers, body)
    assert not verify(SECRET_B, headers, body)
    stale = signature_headers([signing_key(SECRET_A)], "call-1", int(time.time()) - 600, body)
    assert not verify(SECRET_A, stale, body)
