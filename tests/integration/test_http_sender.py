"""The httpx sender against real sockets: how each kind of failure is classified."""

import asyncio

from domain.outcome import AttemptResult, ErrorKind
from domain.request import RequestSpec
from infrastructure.http_sender import HttpxSender
from infrastructure.outbound_guard import Allowlist
from tests.support.duecall_process import LOOPBACK_ALLOWLIST
from tests.support.target_server import TargetServer, closed_port_url


def _send(url: str, timeout: float = 2.0, snippet_bytes: int = 64) -> AttemptResult:
    async def go() -> AttemptResult:
        sender = HttpxSender(
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
