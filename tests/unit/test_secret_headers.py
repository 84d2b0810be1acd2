"""Secret header values: sealed at rest (AES-GCM), opened only to send, redacted on the way out."""

import base64
import json
import multiprocessing
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from uuid import uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.cryptography import AESCipher

from application.dispatch.execution_loop import _scrubbed
from domain.errors import InvalidRequestError
from domain.execution import Execution
from domain.outcome import AttemptResult, ErrorKind
from domain.redaction import (
    REDACTED,
    SEALED_PREFIX,
    redact_headers,
    redact_payload,
    scrub_text,
    secret_values,
)
from domain.request import MAX_SECRET_HEADERS, RequestSpec
from domain.service_call import ServiceCall
from infrastructure.logging import redact_secrets
from infrastructure.secret_box import AesSecretBox, secret_key
from infrastructure.settings import Settings
from tests.support import key_race
from tests.support.event_fixtures import stored_events

URL = "https://api.example.com/hooks/1"
KEY = AESCipher.create_key(32)
BOX = AesSecretBox(KEY)
NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


def _secret_request() -> RequestSpec:
    return RequestSpec(
        "POST",
        URL,
        {"Authorization": "Bearer s3cret-XYZ", "X-Custom-Token": "tok-123", "X-Trace": "t1"},
        "{}",
        secret_headers=("X-Custom-Token",),
    )


# --- the box -------------------------------------------------------------------------------


def test_a_sealed_value_opens_to_the_plaintext_and_shows_it_is_sealed() -> None:
    sealed = BOX.seal("Bearer s3cret-XYZ")
    assert sealed.startswith(SEALED_PREFIX)
    assert "s3cret" not in sealed
    assert BOX.open(sealed) == "Bearer s3cret-XYZ"
    assert BOX.open(BOX.seal("")) == ""
    assert BOX.open(BOX.seal("ünïcode ✓")) == "ünïcode ✓"


def test_sealing_twice_gives_different_ciphertexts_random_nonces() -> None:
    assert BOX.seal("same") != BOX.seal("same")


def test_another_key_cannot_open_it() -> None:
    other = AesSecretBox(AESCipher.create_key(32))
    with pytest.raises(ValueError, match="Invalid cipher tag"):
        other.open(BOX.seal("Bearer s3cret-XYZ"))


def test_a_tampered_ciphertext_does_not_open() -> None:
    sealed = BOX.seal("Bearer s3cret-XYZ")
    raw = bytearray(base64.b64decode(sealed.removeprefix(SEALED_PREFIX)))
    raw[-1] ^= 0x01  # one bit of the encrypted text
    with pytest.raises(ValueError, match="Invalid cipher tag"):
        BOX.open(SEALED_PREFIX + base64.b64encode(bytes(raw)).decode())
    with pytest.raises(ValueError, match="Damaged cipher text"):
        BOX.open(sealed[: len(SEALED_PREFIX) + 8])  # truncated
    with pytest.raises(ValueError, match="not a sealed value"):
        BOX.open("Bearer s3cret-XYZ")


def test_the_configured_key_is_used_and_no_key_file_is_made(tmp_path: Path) -> None:
    settings = Settings(secret_key=KEY, data_dir=tmp_path / "pgdata")
    assert secret_key(settings) == KEY
    assert not (tmp_path / "secret.key").exists()


def test_without_a_configured_key_a_private_key_file_is_made_once(tmp_path: Path) -> None:
    settings = Settings(secret_key=None, data_dir=tmp_path / "pgdata")
    key = secret_key(settings)
    path = tmp_path / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(key)) == 32
    assert secret_key(settings) == key
    assert AesSecretBox(secret_key(settings)).open(AesSecretBox(key).seal("x")) == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.key"]  # no drafts left


def test_processes_starting_at_once_agree_on_one_key_file(tmp_path: Path) -> None:
    # forked from one server that imported the key code once: they start within milliseconds
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([key_race.__name__])
    with context.Pool(6) as pool:
        keys = pool.map(key_race.key_in_a_process, [str(tmp_path / "pgdata")] * 12)
    assert len(set(keys)) == 1
    assert (tmp_path / "secret.key").read_text().strip() == keys[0]


# --- the request ---------------------------------------------------------------------------


def test_secret_header_names_are_lower_cased_once_each() -> None:
    spec = RequestSpec("GET", URL, secret_headers=("X-Token", "x-token", "X-Other"))
    assert spec.secret_headers == ("x-token", "x-other")
    assert spec.secret_names >= {"x-token", "x-other", "authorization", "cookie", "x-api-key"}


@pytest.mark.parametrize("name", ["", "X Token", "X-Token:", "X-Tök", "a\r\nb", "(x)"])
def test_a_secret_header_name_must_be_a_header_name(name: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        RequestSpec("GET", URL, secret_headers=(name,))
    assert raised.value.field == "request.secret_headers"


def test_at_most_64_secret_header_names() -> None:
    names = tuple(f"X-S{i}" for i in range(MAX_SECRET_HEADERS))
    assert len(RequestSpec("GET", URL, secret_headers=names).secret_headers) == 64
    with pytest.raises(InvalidRequestError, match="at most 64"):
        RequestSpec("GET", URL, secret_headers=(*names, "X-One-Too-Many"))


def test_sealing_touches_only_secret_headers_and_opening_restores_them() -> None:
    spec = _secret_request()
    sealed = spec.sealed(BOX.seal)
    assert sealed.headers["X-Trace"] == "t1"
    assert all(
        sealed.headers[name].startswith(SEALED_PREFIX)
        for name in ("Authorization", "X-Custom-Token")
    )
    assert spec.headers["Authorization"] == "Bearer s3cret-XYZ"  # the original is unchanged
    assert sealed.opened(BOX.open) == spec
    assert sealed.as_dict()["secret_headers"] == ["x-custom-token"]


def test_opening_leaves_values_recorded_in_clear_and_non_secret_look_alikes() -> None:
    spec = RequestSpec(
        "GET", URL, {"Authorization": "Bearer old", "X-Note": SEALED_PREFIX + "literal"}
    )
    assert spec.opened(BOX.open) == spec


def test_a_restored_request_keeps_its_secret_header_names() -> None:
    restored = RequestSpec.restored(**_secret_request().as_dict())
    assert restored.secret_headers == ("x-custom-token",)


def test_v1_submitted_events_replay_into_calls_that_list_no_secret_headers() -> None:
    mapper = Application[Any]().mapper
    rows = [r for r in stored_events() if r.topic == "duecall:ServiceCall.Submitted"]
    events = [mapper.to_domain_event(row) for row in rows]
    assert [cast(Any, e).secret_headers for e in events] == [[], [], []]
    calls = [cast(ServiceCall, cast(Any, e).mutate(None)) for e in events]
    assert all(call.request.secret_headers == () for call in calls)


# --- redaction -----------------------------------------------------------------------------


def test_a_call_describes_its_secret_headers_redacted() -> None:
    call = ServiceCall.submit(
        id=uuid4(), tenant_id="t", name="n", request=_secret_request().sealed(BOX.seal),
        due_at=NOW,
    )
    request = call.describe()["request"]
    assert request["headers"] == {
        "Authorization": REDACTED, "X-Custom-Token": REDACTED, "X-Trace": "t1"
    }
    assert request["secret_headers"] == ["x-custom-token"]


def test_the_submitted_event_payload_is_redacted_by_its_own_secret_headers_list() -> None:
    call = ServiceCall.submit(
        id=uuid4(), tenant_id="t", name="n", request=_secret_request(),  # even in clear
        due_at=NOW,
    )
    submitted = call.collect_events()[0]
    payload = json.loads(Application[Any]().mapper.to_stored_event(submitted).state)
    redacted = redact_payload(payload)
    assert redacted["headers"] == {
        "Authorization": REDACTED, "X-Custom-Token": REDACTED, "X-Trace": "t1"
    }
    assert "s3cret" not in json.dumps(redacted)
    assert "tok-123" not in json.dumps(redacted)


def test_an_execution_describes_sealed_values_redacted() -> None:
    request = _secret_request().sealed(BOX.seal)
    execution = Execution.begin(
        id=uuid4(), tenant_id="t", service_call_id=uuid4(), attempt=1, request=request,
        now=NOW,
    )
    headers = execution.describe()["request"]["headers"]
    assert headers == {"Authorization": REDACTED, "X-Custom-Token": REDACTED, "X-Trace": "t1"}


def test_a_listed_name_applies_to_headers_below_it_and_sealed_values_anywhere() -> None:
    payload = {
        "request": {
            "secret_headers": ["X-Token"],
            "headers": {"x-token": "a", "X-Other": "b"},
            "nested": {"response_headers": {"X-TOKEN": "c"}},
        },
        "headers": {"X-Token": "not listed out here"},
        "signing_secret": SEALED_PREFIX + "abc",
        "items": [SEALED_PREFIX + "def", "plain"],
    }
    redacted = redact_payload(payload)
    assert redacted["request"]["headers"] == {"x-token": REDACTED, "X-Other": "b"}
    assert redacted["request"]["nested"]["response_headers"] == {"X-TOKEN": REDACTED}
    assert redacted["headers"] == {"X-Token": "not listed out here"}
    assert redacted["signing_secret"] == REDACTED
    assert redacted["items"] == [REDACTED, "plain"]
    assert redact_headers({"X-A": "1", "x-b": "2"}, ["X-B"]) == {"X-A": "1", "x-b": REDACTED}


def test_log_lines_have_their_headers_redacted() -> None:
    line = {
        "event": "something",
        "headers": {"Authorization": "Bearer s3cret-XYZ", "Accept": "*/*"},
        "request": {"secret_headers": ["x-custom-token"], "headers": {"X-Custom-Token": "t"}},
        "sealed": BOX.seal("x"),
    }
    redacted = redact_secrets(None, "info", line)
    assert redacted["headers"] == {"Authorization": REDACTED, "Accept": "*/*"}
    assert redacted["request"]["headers"] == {"X-Custom-Token": REDACTED}
    assert redacted["sealed"] == REDACTED
    assert redacted["event"] == "something"


def test_what_a_target_echoes_of_a_secret_is_cut_out_of_the_recorded_result() -> None:
    request = _secret_request()
    secrets = secret_values(request.headers, request.secret_names)
    assert secrets == ["Bearer s3cret-XYZ", "s3cret-XYZ", "tok-123"]
    result = AttemptResult(
        12.0,
        status_code=200,
        headers={"X-Echo": "tok-123", "Content-Type": "text/plain"},
        body_snippet='{"authorization": "Bearer s3cret-XYZ", "token": "s3cret-XYZ"}',
        message=None,
    )
    scrubbed = _scrubbed(result, secrets)
    assert scrubbed.headers == {"X-Echo": REDACTED, "Content-Type": "text/plain"}
    assert scrubbed.body_snippet == f'{{"authorization": "{REDACTED}", "token": "{REDACTED}"}}'
    failed = _scrubbed(
        AttemptResult(1.0, error_kind=ErrorKind.NETWORK, message="bad value 'tok-123'"), secrets
    )
    assert failed.message == f"bad value '{REDACTED}'"
    assert _scrubbed(result, []) is result
    assert scrub_text("short ab", ["ab"]) == f"short {REDACTED}"


def test_a_request_without_secret_headers_is_recorded_as_it_is() -> None:
    """Sealing a request with no secret header seals nothing (and copies nothing)."""
    spec = RequestSpec("POST", "https://example.com/x", {"X-Plain": "v"}, secret_headers=("X-T",))

    def never(value: str) -> str:
        raise AssertionError(f"sealed {value!r}")

    assert spec.sealed(never) is spec
    with_secret = RequestSpec("POST", "https://example.com/x", {"x-t": "v", "Authorization": "a"},
                              secret_headers=("X-T",))
    sealed = with_secret.sealed(BOX.seal)
    assert sealed is not with_secret
    assert with_secret.headers == {"x-t": "v", "Authorization": "a"}
    assert all(value.startswith(SEALED_PREFIX) for value in sealed.headers.values())
