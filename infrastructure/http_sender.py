"""The HTTP port implemented with httpx: one shared AsyncClient and connection pool.

httpx's exceptions map onto attempt outcomes:
    TimeoutException (connect/read/write/pool timeouts) → ``timeout``
    TransportError and any other HTTPError (refused, reset, DNS, protocol) → ``network``
A non-2xx answer is a result, classified as ``http_error`` by the domain.

The transport is aiohttp's (``httpx-aiohttp``): httpx's default transport spent most of the
worker's CPU in its connection-pool bookkeeping at a few hundred requests in flight.
"""

import asyncio
import time
from collections.abc import Mapping

import httpx
from httpx_aiohttp import AiohttpTransport

from domain.outcome import AttemptResult, ErrorKind
from domain.request import RequestSpec


class HttpxSender:
    def __init__(
        self,
        *,
        snippet_bytes: int = 64 * 1024,
        max_connections: int = 256,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._snippet_bytes = snippet_bytes
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client = httpx.AsyncClient(
            limits=limits,
            follow_redirects=False,
            transport=transport or AiohttpTransport(limits=limits, trust_env=False),
            headers={"User-Agent": "duecall/0.1"},
        )

    async def send(self, request: RequestSpec, extra_headers: Mapping[str, str]) -> AttemptResult:
        started = time.perf_counter()
        headers = {**request.headers, **extra_headers}
        content = request.body.encode() if request.body is not None else None
        try:
            async with asyncio.timeout(request.timeout_seconds):
                return await self._exchange(request, headers, content, started)
        except (TimeoutError, httpx.HTTPError) as error:
            kind = _kind_of(error)
            if kind is ErrorKind.TIMEOUT:
                return _failure(started, kind, f"timed out after {request.timeout_seconds:g} s")
            cause = error.__cause__ or error
            return _failure(started, kind, f"{type(cause).__name__}: {cause}")

    async def _exchange(
        self,
        request: RequestSpec,
        headers: dict[str, str],
        content: bytes | None,
        started: float,
    ) -> AttemptResult:
        async with self._client.stream(
            request.method, request.url, headers=headers, content=content,
            timeout=request.timeout_seconds,
        ) as response:
            snippet = bytearray()
            async for chunk in response.aiter_bytes():
                if len(snippet) < self._snippet_bytes:
                    snippet.extend(chunk[: self._snippet_bytes - len(snippet)])
        return AttemptResult(
            duration_ms=_elapsed_ms(started),
            status_code=response.status_code,
            headers=dict(response.headers),
            body_snippet=snippet.decode("utf-8", errors="replace"),
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _kind_of(error: Exception) -> ErrorKind:
    """Timeout or network. httpx-aiohttp reports a refused connection as ConnectTimeout, so
    the underlying error decides: an OSError that is not a TimeoutError is a network error."""
    cause = error.__cause__
    if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
        return ErrorKind.NETWORK
    if isinstance(error, TimeoutError | httpx.TimeoutException):
        return ErrorKind.TIMEOUT
    return ErrorKind.NETWORK


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _failure(started: float, kind: ErrorKind, message: str) -> AttemptResult:
    return AttemptResult(duration_ms=_elapsed_ms(started), error_kind=kind, message=message)
