"""The real AiohttpSender and the outbound guard against real local servers (real sockets, the
machine's resolver): refused targets are never contacted, allowlisted ones are; redirects are
followed only when asked, each hop is guarded and sent as browsers send it, and a redirect's
body is not read; response bodies are capped."""

import asyncio
import json
import socket
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from domain.outcome import AttemptResult, ErrorKind
from domain.request import RequestSpec
from harness.raw_target import ScriptedTarget
from harness.target_server import TargetServer
from infrastructure.http_sender import AiohttpSender
from infrastructure.outbound_guard import Allowlist

ONLY_127_0_0_1 = "127.0.0.1/32"


def _send(
    url: str, allowlist: str = "", follow_redirects: bool = False, snippet_bytes: int = 64 * 1024
) -> AttemptResult:
    request = RequestSpec("GET", url, timeout_seconds=5, follow_redirects=follow_redirects)
    return send_spec(request, allowlist, snippet_bytes=snippet_bytes)


def send_spec(
    request: RequestSpec,
    allowlist: str,
    own: dict[str, str] | None = None,
    snippet_bytes: int = 64 * 1024,
) -> AttemptResult:
    """``request`` sent by a fresh sender with ``own`` as duecall's headers."""

    async def go() -> AttemptResult:
        sender = AiohttpSender(snippet_bytes=snippet_bytes, allowlist=Allowlist.parse(allowlist))
        try:
            return await sender.send(request, own or {})
        finally:
            await sender.aclose()

    return asyncio.run(go())


@pytest.fixture
def target() -> Iterator[TargetServer]:
    with TargetServer() as server:
        yield server


@pytest.fixture
def elsewhere() -> Iterator[TargetServer]:
    """A second server, on 127.0.0.2: a loopback address the allowlist does not admit (and
    another origin)."""
    with TargetServer(host="127.0.0.2") as server:
        yield server


def redirect_via(via: TargetServer, to: str, code: int = 302) -> str:
    return f"{via.url}/redirect/{code}?to={quote(to, safe='')}"


def test_without_the_allowlist_a_loopback_target_is_rejected_and_never_contacted(
    target: TargetServer,
) -> None:
    result = _send(f"{target.url}/ok")
    assert result.error_kind is ErrorKind.REJECTED
    assert result.message == "refused: 127.0.0.1 is a loopback address"
    assert result.status_code is None
    assert target.requests == []


def test_with_the_allowlist_the_same_target_gets_the_request(target: TargetServer) -> None:
    result = _send(f"{target.url}/ok", allowlist=ONLY_127_0_0_1)
    assert (result.status_code, result.error_kind) == (200, None)
    assert [r.path for r in target.requests] == ["/ok"]


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "0177.0.0.1", "[::ffff:7f00:1]"])
def test_other_spellings_of_loopback_are_rejected_too(target: TargetServer, host: str) -> None:
    result = _send(f"http://{host}:{target.port}/ok")
    assert result.error_kind is ErrorKind.REJECTED
    assert "127.0.0.1, which is a loopback address" in (result.message or "") or (
        "127.0.0.1 is a loopback address" in (result.message or "")
    )
    assert target.requests == []


def test_a_name_resolving_to_a_refused_address_is_rejected_at_connect_time(
    target: TargetServer,
) -> None:
    """``localhost`` is a name, so it is the resolver's answer that is refused (the IPv6
    loopback is admitted here so that only 127.0.0.1 can be the reason)."""
    result = _send(f"http://localhost:{target.port}/ok", allowlist="::1/128")
    assert result.error_kind is ErrorKind.REJECTED
    assert result.message == "refused: 127.0.0.1 is a loopback address (host localhost)"
    assert target.requests == []


def test_an_allowlisted_host_name_is_admitted_whatever_it_resolves_to(
    target: TargetServer,
) -> None:
    result = _send(f"http://localhost:{target.port}/ok", allowlist="localhost")
    assert result.status_code == 200
    assert len(target.requests) == 1


def test_a_redirect_to_a_refused_address_is_rejected_when_following_redirects(
    target: TargetServer, elsewhere: TargetServer
) -> None:
    result = _send(
        redirect_via(target, f"{elsewhere.url}/ok"), allowlist=ONLY_127_0_0_1, follow_redirects=True
    )
    assert result.error_kind is ErrorKind.REJECTED
    assert result.message == "refused: 127.0.0.2 is a loopback address"
    assert [r.path for r in target.requests] == ["/redirect/302"]
    assert elsewhere.requests == []


def test_without_following_redirects_the_3xx_is_the_result(
    target: TargetServer, elsewhere: TargetServer
) -> None:
    result = _send(redirect_via(target, f"{elsewhere.url}/ok", 307), allowlist=ONLY_127_0_0_1)
    assert (result.status_code, result.error_kind) == (307, None)
    assert result.classified().error_kind is ErrorKind.HTTP_ERROR
    assert (result.headers or {})["location"] == f"{elsewhere.url}/ok"
    assert elsewhere.requests == []


def test_an_admitted_redirect_is_followed_when_asked(
    target: TargetServer, elsewhere: TargetServer
) -> None:
    result = _send(
        redirect_via(target, f"{elsewhere.url}/ok"), allowlist="127.0.0.0/8", follow_redirects=True
    )
    assert (result.status_code, result.error_kind) == (200, None)
    assert [r.path for r in elsewhere.requests] == ["/ok"]


def test_at_most_five_redirects_are_followed(target: TargetServer) -> None:
    def chain(hops: int) -> str:
        url = f"{target.url}/ok"
        for _ in range(hops):
            url = redirect_via(target, url)
        return url

    assert _send(chain(5), allowlist=ONLY_127_0_0_1, follow_redirects=True).status_code == 200
    target.clear()
    result = _send(chain(6), allowlist=ONLY_127_0_0_1, follow_redirects=True)
    assert result.error_kind is ErrorKind.REJECTED
    assert result.message == "refused: more than 5 redirects"
    assert len(target.requests) == 6  # the sixth redirect was not followed


def test_a_large_response_body_is_kept_only_up_to_the_snippet_size(target: TargetServer) -> None:
    result = _send(f"{target.url}/large/3000000", allowlist=ONLY_127_0_0_1)
    assert (result.status_code, result.error_kind) == (200, None)
    assert result.body_snippet == "x" * 64 * 1024


def test_secret_headers_follow_a_redirect_only_within_the_origin(
    target: TargetServer, elsewhere: TargetServer
) -> None:
    headers = {"X-Api-Key": "k-1", "X-Token": "t-1", "X-Plain": "p-1"}

    async def go(url: str) -> AttemptResult:
        sender = AiohttpSender(allowlist=Allowlist.parse("127.0.0.0/8"))
        try:
            request = RequestSpec("GET", url, headers=headers, timeout_seconds=5,
                                  follow_redirects=True, secret_headers=("X-Token",))
            return await sender.send(request, {})
        finally:
            await sender.aclose()

    assert asyncio.run(go(redirect_via(target, f"{elsewhere.url}/other"))).status_code == 200
    assert asyncio.run(go(redirect_via(target, f"{target.url}/same"))).status_code == 200
    moved = elsewhere.wait_for(1, path="/other")[0].headers
    stayed = target.wait_for(1, path="/same")[0].headers
    assert "x-api-key" not in moved
    assert "x-token" not in moved
    assert moved["x-plain"] == "p-1"
    assert (stayed["x-api-key"], stayed["x-token"]) == ("k-1", "t-1")


# -- redirects, followed by the sender itself (aiohttp's own following is off) ---------------


def _send_followed(spec: RequestSpec) -> AttemptResult:
    return send_spec(spec, "127.0.0.0/8", {"Idempotency-Key": "call:1"})


def _echoed(result: AttemptResult) -> dict[str, object]:
    assert (result.status_code, result.error_kind) == (200, None), result
    echoed: dict[str, object] = json.loads(result.body_snippet or "")
    return echoed


@pytest.mark.parametrize(
    ("code", "method", "followed_with", "body"),
    [
        (303, "POST", "GET", ""),
        (303, "PUT", "GET", ""),
        (302, "POST", "GET", ""),
        (301, "POST", "GET", ""),
        (302, "PUT", "PUT", "payload"),
        (307, "POST", "POST", "payload"),
        (308, "PATCH", "PATCH", "payload"),
    ],
)
def test_a_redirect_is_followed_with_the_method_and_body_browsers_use(
    target: TargetServer, code: int, method: str, followed_with: str, body: str
) -> None:
    spec = RequestSpec(method, redirect_via(target, "/echo", code), {}, "payload", 5.0,
                       follow_redirects=True)
    echoed = _echoed(_send_followed(spec))
    assert (echoed["method"], echoed["body"]) == (followed_with, body)
    assert echoed["headers"]["idempotency-key"] == "call:1"  # type: ignore[index]


def test_authorization_goes_only_to_the_calls_own_origin(
    target: TargetServer, elsewhere: TargetServer
) -> None:
    headers = {"Authorization": "Bearer b-1", "X-Plain": "p-1"}

    def followed(to: str) -> dict[str, object]:
        spec = RequestSpec("GET", redirect_via(target, to), headers, follow_redirects=True)
        return _echoed(_send_followed(spec))

    same, other = followed("/echo"), followed(f"{elsewhere.url}/echo")
    assert same["headers"]["authorization"] == "Bearer b-1"  # type: ignore[index]
    assert "authorization" not in other["headers"]  # type: ignore[operator]
    assert other["headers"]["x-plain"] == "p-1"  # type: ignore[index]


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/x"])
def test_a_redirect_to_a_url_that_is_not_http_is_refused(
    target: TargetServer, location: str
) -> None:
    spec = RequestSpec("GET", redirect_via(target, location), follow_redirects=True)
    result = _send_followed(spec)
    assert result.error_kind is ErrorKind.REJECTED
    assert (result.message or "").startswith("refused: a redirect to ")


def test_a_redirect_to_a_malformed_location_is_a_network_error(target: TargetServer) -> None:
    spec = RequestSpec("GET", redirect_via(target, "http://[::1"), follow_redirects=True)
    result = _send_followed(spec)
    assert result.error_kind is ErrorKind.NETWORK
    assert (result.message or "").startswith("ValueError: ")


def _endless_redirect(location: str) -> ScriptedTarget:
    """Answers a request with a 302 to ``location`` whose body is announced at 1 GB and never
    sent: a client that reads a redirect's body waits until it times out."""

    def script(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: {location}\r\n"
                     f"Content-Length: {10**9}\r\n\r\n".encode())  # then open, silent

    return ScriptedTarget(script)


def test_a_redirects_body_is_not_read(target: TargetServer) -> None:
    redirect = _endless_redirect(f"{target.url}/ok")
    try:
        result = _send_followed(RequestSpec("GET", f"{redirect.url}/", timeout_seconds=3.0,
                                   follow_redirects=True))
    finally:
        redirect.close()
    assert (result.status_code, result.error_kind) == (200, None)
    assert result.duration_ms < 2000
    assert [r.path for r in target.requests] == ["/ok"]


def test_answer_headers_are_named_in_lower_case(target: TargetServer) -> None:
    result = _send_followed(RequestSpec("GET", f"{target.url}/retry-after/7"))
    assert result.status_code == 503
    assert (result.headers or {})["retry-after"] == "7"
    assert all(name == name.lower() for name in result.headers or {})
