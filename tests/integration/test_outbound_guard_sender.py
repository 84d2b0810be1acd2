"""The real HttpxSender and the outbound guard against real local servers (real sockets, the
machine's resolver): refused targets are never contacted, allowlisted ones are; redirects are
followed only when asked and each hop is guarded; response bodies are capped."""

import asyncio
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from domain.outcome import AttemptResult, ErrorKind
from domain.request import RequestSpec
from harness.target_server import TargetServer
from infrastructure.http_sender import HttpxSender
from infrastructure.outbound_guard import Allowlist

ONLY_127_0_0_1 = "127.0.0.1/32"


def _send(
    url: str, allowlist: str = "", follow_redirects: bool = False, snippet_bytes: int = 64 * 1024
) -> AttemptResult:
    async def go() -> AttemptResult:
        sender = HttpxSender(snippet_bytes=snippet_bytes, allowlist=Allowlist.parse(allowlist))
        try:
            request = RequestSpec("GET", url, timeout_seconds=5, follow_redirects=follow_redirects)
            return await sender.send(request, {})
        finally:
            await sender.aclose()

    return asyncio.run(go())


@pytest.fixture
def target() -> Iterator[TargetServer]:
    with TargetServer() as server:
        yield server


@pytest.fixture
def elsewhere() -> Iterator[TargetServer]:
    """A second server, on 127.0.0.2: a loopback address the allowlist does not admit."""
    with TargetServer(host="127.0.0.2") as server:
        yield server


def _redirect(via: TargetServer, to: str, code: int = 302) -> str:
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
        _redirect(target, f"{elsewhere.url}/ok"), allowlist=ONLY_127_0_0_1, follow_redirects=True
    )
    assert result.error_kind is ErrorKind.REJECTED
    assert result.message == "refused: 127.0.0.2 is a loopback address"
    assert [r.path for r in target.requests] == ["/redirect/302"]
    assert elsewhere.requests == []


def test_without_following_redirects_the_3xx_is_the_result(
    target: TargetServer, elsewhere: TargetServer
) -> None:
    result = _send(_redirect(target, f"{elsewhere.url}/ok", 307), allowlist=ONLY_127_0_0_1)
    assert (result.status_code, result.error_kind) == (307, None)
    assert result.classified().error_kind is ErrorKind.HTTP_ERROR
    assert (result.headers or {})["location"] == f"{elsewhere.url}/ok"
    assert elsewhere.requests == []


def test_an_admitted_redirect_is_followed_when_asked(
    target: TargetServer, elsewhere: TargetServer
) -> None:
    result = _send(
        _redirect(target, f"{elsewhere.url}/ok"), allowlist="127.0.0.0/8", follow_redirects=True
    )
    assert (result.status_code, result.error_kind) == (200, None)
    assert [r.path for r in elsewhere.requests] == ["/ok"]


def test_at_most_five_redirects_are_followed(target: TargetServer) -> None:
    def chain(hops: int) -> str:
        url = f"{target.url}/ok"
        for _ in range(hops):
            url = _redirect(target, url)
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
        sender = HttpxSender(allowlist=Allowlist.parse("127.0.0.0/8"))
        try:
            request = RequestSpec("GET", url, headers=headers, timeout_seconds=5,
                                  follow_redirects=True, secret_headers=("X-Token",))
            return await sender.send(request, {})
        finally:
            await sender.aclose()

    assert asyncio.run(go(_redirect(target, f"{elsewhere.url}/other"))).status_code == 200
    assert asyncio.run(go(_redirect(target, f"{target.url}/same"))).status_code == 200
    moved = elsewhere.wait_for(1, path="/other")[0].headers
    stayed = target.wait_for(1, path="/same")[0].headers
    assert "x-api-key" not in moved
    assert "x-token" not in moved
    assert moved["x-plain"] == "p-1"
    assert (stayed["x-api-key"], stayed["x-token"]) == ("k-1", "t-1")
