"""Secrets are redacted from recorded payloads on the way out."""

from domain.redaction import REDACTED, redact_payload


def test_credential_headers_are_redacted_whatever_their_case() -> None:
    payload = {
        "headers": {"authorization": "Bearer x", "X-API-Key": "k", "Cookie": "a=b",
                    "Proxy-Authorization": "Basic y", "Accept": "text/plain"},
        "response_headers": {"Set-Cookie": "sid=1", "Content-Type": "text/plain"},
    }
    redacted = redact_payload(payload)
    assert redacted["headers"] == {"authorization": REDACTED, "X-API-Key": REDACTED,
                                   "Cookie": REDACTED, "Proxy-Authorization": REDACTED,
                                   "Accept": "text/plain"}
    assert redacted["response_headers"] == {"Set-Cookie": REDACTED, "Content-Type": "text/plain"}
    assert payload["headers"]["authorization"] == "Bearer x"  # the input is left alone


def test_only_header_mappings_are_touched_at_any_depth() -> None:
    payload = {
        "authorization": "not a header",
        "request": {"headers": {"Authorization": "secret"}, "url": "https://x"},
        "attempts": [{"headers": {"Cookie": "c"}}],
        "headers": None,
    }
    redacted = redact_payload(payload)
    assert redacted["authorization"] == "not a header"
    assert redacted["request"] == {"headers": {"Authorization": REDACTED}, "url": "https://x"}
    assert redacted["attempts"] == [{"headers": {"Cookie": REDACTED}}]
    assert redacted["headers"] is None
