"""The aiohttp sender against real sockets: how each kind of failure is classified."""

import asyncio

from domain.outcome import AttemptResult, ErrorKind
from domain.request import RequestSpec
from harness.network import LOOPBACK_ALLOWLIST, closed_port_url
from harness.target_server import TargetServer
from infrastructure.http_sender import AiohttpSender
from infrastructure.outbound_guard import Allowlist


def _send(url: str, timeout: float = 2.0, snippet_bytes: int = 64) -> AttemptResult:
    async def go() -> AttemptResult:
        sender = AiohttpSender(
            snippet_bytes=snippet_bytes, allowlist=Allowlist.parse(LOOPBACK_ALLOWLIST)
        )
        try:
            return await sender.send(RequestSpec("GET", url, timeout_seconds=timeout), {})
        finally:
            await sender.aclose()

    return asyncio.run(go())


def test_a_refused_connection_is_a_network_error() -> None:
    result = _send(closed_port_url())
    assert result.error_kind is ErrorKind.NETWORK
    assert "Timeout" not in (result.message or "")


def test_an_unknown_host_is_a_network_error() -> None:
    assert _send("http://no-such-host.invalid/").error_kind is ErrorKind.NETWORK


def test_a_slow_answer_is_a_timeout() -> None:
    with TargetServer() as target:
        result = _send(f"{target.url}/slow/3", timeout=1.0)
    assert result.error_kind is ErrorKind.TIMEOUT
    assert 900 <= result.duration_ms < 2500


def test_an_answer_is_recorded_with_a_bounded_snippet() -> None:
    with TargetServer() as target:
        result = _send(f"{target.url}/echo", snippet_bytes=10)
    assert result.status_code == 200
    assert result.error_kind is None
    assert len(result.body_snippet or "") == 10


def test_cookies_a_target_sets_are_not_sent_with_later_calls() -> None:
    """One client serves every tenant's calls: a cookie one call's answer sets must not go out
    with any other call (httpx and aiohttp would both keep it in their jars by default)."""

    async def go() -> None:
        sender = AiohttpSender(allowlist=Allowlist.parse(LOOPBACK_ALLOWLIST))
        try:
            for path in ("set-cookie", "echo", "redirect/302?to=/echo"):
                spec = RequestSpec("GET", f"{target.url}/{path}", follow_redirects=True)
                assert (await sender.send(spec, {})).status_code == 200
        finally:
            await sender.aclose()

    with TargetServer() as target:
        asyncio.run(go())
        received = target.requests
    assert [r.path for r in received] == ["/set-cookie", "/echo", "/redirect/302", "/echo"]
    assert all("cookie" not in r.headers for r in received)
