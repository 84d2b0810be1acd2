"""On the wire, a target sees exactly one request per attempt, framed by duecall: one
Content-Length, no Transfer-Encoding, duecall's Host and its own headers (never a caller's),
even for a request recorded before such headers were refused at submit."""

import asyncio
import socket

from domain.outcome import AttemptResult, ErrorKind
from domain.request import RequestSpec
from harness.network import LOOPBACK_ALLOWLIST
from harness.raw_target import RawTarget, ScriptedTarget, content_length
from infrastructure.http_sender import AiohttpSender
from infrastructure.outbound_guard import Allowlist

SMUGGLED = "0\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nHost: internal\r\nContent-Length: 0\r\n\r\n"
FORGED = {
    "Transfer-Encoding": "chunked",
    "Content-Length": "3",
    "Host": "forged.example",
    "Connection": "close, Upgrade",
    "Upgrade": "websocket",
    "Expect": "100-continue",
    "TE": "trailers",
    "idempotency-key": "forged-key",
    "duecall-id": "forged-id",
    "DUECALL-SIGNATURE": "v1,forged",
    "traceparent": "00-forged",
    "X-Kept": "kept",
}
OWN = {"Idempotency-Key": "0196-call:1", "Duecall-Id": "0196-call", "Duecall-Signature": "v1,s"}


def _send(target: RawTarget, spec: RequestSpec) -> int | None:
    async def go() -> int | None:
        sender = AiohttpSender(allowlist=Allowlist.parse(LOOPBACK_ALLOWLIST))
        try:
            return (await sender.send(spec, OWN)).status_code
        finally:
            await sender.aclose()

    return asyncio.run(go())


def _one_request(received: list[bytes]) -> tuple[list[tuple[str, str]], bytes]:
    """The head's header lines and the body of the single request on the wire."""
    assert len(received) == 1, received
    head, _, rest = received[0].partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("POST /hook HTTP/1.1"), lines[0]
    headers = [(n.strip().lower(), v.strip()) for n, _, v in (x.partition(":") for x in lines[1:])]
    assert len(rest) == content_length(head), "bytes beyond the framed body: a second request"
    return headers, rest


def test_a_recorded_request_with_framing_headers_reaches_the_target_as_one_request() -> None:
    """A call recorded before the rule (restored: not validated again) cannot smuggle."""
    with RawTarget() as target:
        spec = RequestSpec.restored(
            "POST", f"{target.url}/hook", FORGED, SMUGGLED, 5.0, False, ()
        )
        assert _send(target, spec) == 200
        headers, body = _one_request(target.received())
    names = [name for name, _ in headers]
    values = dict(headers)
    assert body == SMUGGLED.encode()
    assert names.count("content-length") == 1
    assert values["content-length"] == str(len(SMUGGLED))
    assert "transfer-encoding" not in names
    assert values["host"] == target.url.removeprefix("http://")
    for name in ("upgrade", "expect", "te", "traceparent"):
        assert name not in names
    assert "upgrade" not in values.get("connection", "").lower()
    assert [v for n, v in headers if n == "idempotency-key"] == ["0196-call:1"]
    assert [v for n, v in headers if n == "duecall-id"] == ["0196-call"]
    assert [v for n, v in headers if n == "duecall-signature"] == ["v1,s"]
    assert values["x-kept"] == "kept"


def test_an_ordinary_request_is_framed_by_content_length_alone() -> None:
    with RawTarget() as target:
        spec = RequestSpec("POST", f"{target.url}/hook", {"X-A": "1"}, "héllo", 5.0)
        assert _send(target, spec) == 200
        headers, body = _one_request(target.received())
    names = [name for name, _ in headers]
    assert body == "héllo".encode()
    assert names.count("content-length") == 1
    assert "transfer-encoding" not in names
    assert [v for n, v in headers if n == "idempotency-key"] == ["0196-call:1"]


def _drops_the_second_request(requests: list[bytes]) -> ScriptedTarget:
    """Answers a connection's first request (keep-alive), reads its second and closes without
    answering: a target failing mid-request on a reused connection. Each request read is
    appended to ``requests``."""

    def script(conn: socket.socket) -> None:
        for answered in (True, False):
            request = conn.recv(65536)
            if not request:
                return
            requests.append(request)
            if answered:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conn.close()

    return ScriptedTarget(script)


def test_an_attempt_is_never_sent_twice_on_a_reused_connection() -> None:
    """aiohttp re-sends an idempotent request once when a reused connection fails; an attempt
    is one request on the wire (a GET may have had its effect), so the failure is the result."""
    requests: list[bytes] = []
    target = _drops_the_second_request(requests)

    async def go() -> list[AttemptResult]:
        sender = AiohttpSender(allowlist=Allowlist.parse(LOOPBACK_ALLOWLIST))
        try:
            return [await sender.send(RequestSpec("GET", f"{target.url}/x", timeout_seconds=5),
                                      OWN) for _ in range(2)]
        finally:
            await sender.aclose()

    try:
        first, second = asyncio.run(go())
    finally:
        target.close()
    assert first.status_code == 200
    assert second.error_kind is ErrorKind.NETWORK
    assert len(requests) == 2
