"""The HTTP port implemented with httpx: one shared AsyncClient and connection pool.

httpx's exceptions map onto attempt outcomes:
    TimeoutException (connect/read/write/pool timeouts) → ``timeout``
    TransportError and any other HTTPError (refused, reset, DNS, protocol) → ``network``
    OutboundRefusedError (the outbound guard), TooManyRedirects → ``rejected`` (not sent)
A non-2xx answer is a result, classified as ``http_error`` by the domain.

Every request passes the outbound guard (``outbound_guard.py``): the URL's host before
sending, each hop at the transport, and every resolved address at connect time. Redirects are
followed only when the request asks for it (``follow_redirects``), at most ``max_redirects``.
The response body is streamed: the first ``snippet_bytes`` are kept, the rest is discarded.
The client frames every request itself: a call's framing, Host and duecall-owned headers are
dropped (refused at submit; a record made before that rule may still hold them).

The transport is aiohttp's (``httpx-aiohttp``): httpx's default transport spent most of the
worker's CPU in its connection-pool bookkeeping at a few hundred requests in flight.
"""

import asyncio
import http.cookiejar
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import httpx

from domain.headers import is_reserved
from domain.outcome import AttemptResult, ErrorKind
from domain.request import RequestSpec
from infrastructure.outbound_guard import (
    Allowlist,
    GuardedTransport,
    OutboundGuard,
    OutboundRefusedError,
    guarded_aiohttp_transport,
)

MAX_REDIRECTS = 5
_ORIGIN, _SECRETS = "duecall_origin", "duecall_secret_headers"  # request extensions


class HttpxSender:
    def __init__(
        self,
        *,
        snippet_bytes: int = 64 * 1024,
        max_connections: int = 256,
        allowlist: Allowlist | None = None,
        max_redirects: int = MAX_REDIRECTS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport`` replaces the guarded aiohttp one; it is still guarded per request
        (host checks), but resolving is then its own."""
        self._snippet_bytes = snippet_bytes
        self._guard = OutboundGuard(allowlist)
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client = httpx.AsyncClient(
            limits=limits,
            follow_redirects=False,
            max_redirects=max_redirects,
            transport=(
                GuardedTransport(transport, self._guard, snippet_bytes)
                if transport is not None
                else guarded_aiohttp_transport(self._guard, limits, snippet_bytes)
            ),
            headers={"User-Agent": "duecall/0.1"},
            cookies=_NoCookies(),
            event_hooks={"request": [_strip_secrets_off_origin]},
        )

    async def send(self, request: RequestSpec, extra_headers: Mapping[str, str]) -> AttemptResult:
        started = time.perf_counter()
        headers = _outgoing(request.headers, extra_headers)
        content = request.body.encode() if request.body is not None else None
        try:
            self._guard.check_host(request.host)
            async with asyncio.timeout(request.timeout_seconds):
                return await self._exchange(request, headers, content, started)
        except OutboundRefusedError as error:
            return _failure(started, ErrorKind.REJECTED, str(error))
        except httpx.TooManyRedirects:
            message = f"refused: more than {self._client.max_redirects} redirects"
            return _failure(started, ErrorKind.REJECTED, message)
        except (TimeoutError, httpx.HTTPError) as error:
            refused = _refusal_in(error)
            if refused is not None:
                return _failure(started, ErrorKind.REJECTED, str(refused))
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
        url = _parsed(request.url)
        async with self._client.stream(
            request.method, url, headers=headers, content=content,
            timeout=request.timeout_seconds, follow_redirects=request.follow_redirects,
            extensions={_ORIGIN: _origin(url), _SECRETS: request.secret_names},
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


def _outgoing(headers: Mapping[str, str], own: Mapping[str, str]) -> dict[str, str]:
    """The call's headers less reserved names and any of ``own`` (any case), then ``own``:
    duecall's values replace a caller's, never merge with them."""
    replaced = {name.lower() for name in own}
    kept = {
        name: value
        for name, value in headers.items()
        if name.lower() not in replaced and not is_reserved(name)
    }
    return {**kept, **own}


class _NoCookies(http.cookiejar.CookieJar):
    """A jar that keeps nothing and adds nothing: one client makes every tenant's calls, so a
    cookie one call's target sets must never go out with another call (httpx keeps them by
    default). It skips the parsing too: httpx hands it every response (3 % of a worker's
    samples at a steady rate when a policy refused them one by one)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        pass

    def add_cookie_header(self, request: Any) -> None:
        pass


async def _strip_secrets_off_origin(request: httpx.Request) -> None:
    """A redirect to another origin does not carry the call's secret headers (httpx itself
    drops only Authorization and Cookie): their values go in clear to the target only."""
    origin = request.extensions.get(_ORIGIN)
    if origin is not None and _origin(request.url) != origin:
        for name in request.extensions.get(_SECRETS, ()):
            request.headers.pop(name, None)


@lru_cache(maxsize=1024)
def _parsed(url: str) -> httpx.URL:
    """A call's URL, parsed once: httpx.URL is immutable, and the calls to one endpoint share
    it (httpx parsed each request's URL twice: 5 % of a worker's samples in a burst)."""
    return httpx.URL(url)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


def _kind_of(error: Exception) -> ErrorKind:
    """Timeout or network. httpx-aiohttp reports a refused connection as ConnectTimeout, so
    the underlying error decides: an OSError that is not a TimeoutError is a network error."""
    cause = error.__cause__
    if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
        return ErrorKind.NETWORK
    if isinstance(error, TimeoutError | httpx.TimeoutException):
        return ErrorKind.TIMEOUT
    return ErrorKind.NETWORK


def _refusal_in(error: BaseException) -> OutboundRefusedError | None:
    """The guard's refusal, if a library wrapped it in its own error."""
    seen: BaseException | None = error
    for _ in range(10):  # a chain, not a cycle
        if seen is None or isinstance(seen, OutboundRefusedError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _failure(started: float, kind: ErrorKind, message: str) -> AttemptResult:
    return AttemptResult(duration_ms=_elapsed_ms(started), error_kind=kind, message=message)
