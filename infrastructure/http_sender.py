"""The HTTP port implemented with aiohttp: one shared ClientSession and connection pool.

aiohttp's exceptions map onto attempt outcomes:
    TimeoutError (the attempt's ``timeout_seconds``, over the whole exchange) → ``timeout``
    ClientError and OSError (refused, reset, DNS, protocol) → ``network``
    OutboundRefusedError (the outbound guard), a sixth redirect, a redirect to a URL that is
    not HTTP → ``rejected`` (not sent)
A non-2xx answer is a result, classified as ``http_error`` by the domain.

Every request passes the outbound guard (``outbound_guard.py``): the host of the URL before
each hop is sent (this module follows redirects itself, so every request aiohttp makes is one
it checked), and every resolved address at connect time (``GuardedResolver``). Redirects are
followed only when the request asks for it (``follow_redirects``), at most ``max_redirects``,
the way browsers and httpx do: 303 (and a POST's 301 or 302) becomes a GET without a body;
Authorization and the call's secret headers go only to the call's own origin.
The response body is streamed: the first ``snippet_bytes`` are kept, the rest is read and
discarded (the connection stays reusable); a redirect's body is not read at all.
The session frames every request itself: a call's framing, Host and duecall-owned headers are
dropped (refused at submit; a record made before that rule may still hold them), and it adds
no Content-Type of its own.

One attempt is one request: aiohttp's own re-send of an idempotent request on a failed reused
connection is off (the failure is the attempt's result; the retry policy decides).

Why aiohttp without httpx above it: httpx's default transport spent most of the worker's CPU
in its connection-pool bookkeeping at a few hundred requests in flight, and httpx's own layers
over aiohttp (request building, hooks, auth and redirect wrappers) were still about a quarter
of a worker's samples in a burst (docs/performance.md).
"""

import asyncio
import ssl
import time
from collections.abc import Mapping
from functools import lru_cache

import aiohttp
import certifi
from yarl import URL

from domain.headers import is_reserved
from domain.outcome import AttemptResult, ErrorKind
from domain.request import RequestSpec
from infrastructure.outbound_guard import (
    Allowlist,
    GuardedResolver,
    OutboundGuard,
    OutboundRefusedError,
)

MAX_REDIRECTS = 5
USER_AGENT = "duecall/0.1"
KEEPALIVE_SECONDS = 5.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int | None]


class AiohttpSender:
    def __init__(
        self,
        *,
        snippet_bytes: int = 64 * 1024,
        max_connections: int = 256,
        allowlist: Allowlist | None = None,
        max_redirects: int = MAX_REDIRECTS,
    ) -> None:
        self._snippet_bytes = snippet_bytes
        self._max_connections = max_connections
        self._max_redirects = max_redirects
        self._guard = OutboundGuard(allowlist)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        """The session, made on first use: aiohttp binds it to the running event loop."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                keepalive_timeout=KEEPALIVE_SECONDS,
                ssl=ssl.create_default_context(cafile=certifi.where()),
                resolver=GuardedResolver(self._guard),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": USER_AGENT},
                # no cookie jar: one session serves every tenant, so a cookie one call's
                # target sets must never go out with another call
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("Content-Type",),
                timeout=aiohttp.ClientTimeout(total=None),  # send's own timeout bounds it
                trust_env=False,
            )
            # an attempt is one request on the wire: aiohttp would send a GET, PUT or DELETE
            # again when a reused connection fails, and the target may have acted on the first
            # (no public switch: aiohttp's own test client turns it off the same way)
            self._session._retry_connection = False
        return self._session

    async def send(self, request: RequestSpec, extra_headers: Mapping[str, str]) -> AttemptResult:
        started = time.perf_counter()
        try:
            # the host as the domain parsed it (urlsplit); each hop's as yarl parsed it is
            # checked again below: two parsers, so neither can be fooled alone
            self._guard.check_host(request.host)
            async with asyncio.timeout(request.timeout_seconds):
                return await self._exchange(request, extra_headers, started)
        except OutboundRefusedError as error:  # the resolver's refusal reaches here as it is
            return _failure(started, ErrorKind.REJECTED, str(error))
        except TimeoutError:
            message = f"timed out after {request.timeout_seconds:g} s"
            return _failure(started, ErrorKind.TIMEOUT, message)
        except (aiohttp.ClientError, OSError, ValueError) as error:  # ValueError: a bad Location
            return _failure(started, ErrorKind.NETWORK, f"{type(error).__name__}: {error}")

    async def _exchange(
        self, request: RequestSpec, extra_headers: Mapping[str, str], started: float
    ) -> AttemptResult:
        url = _parsed(request.url)
        origin = _origin(url)
        method = request.method
        headers = _outgoing(request.headers, extra_headers)
        content = request.body.encode() if request.body is not None else None
        redirects = 0
        while True:
            self._guard.check_host(url.raw_host or "")
            response = await self._client().request(
                method, url, headers=headers, data=content, allow_redirects=False
            )
            location = response.headers.get("Location")
            if not request.follow_redirects or response.status not in _REDIRECTS or not location:
                break
            response.release()  # a redirect's body is never wanted: not read
            if redirects == self._max_redirects:
                raise OutboundRefusedError(f"refused: more than {self._max_redirects} redirects")
            redirects += 1
            url = url.join(URL(location))
            if url.scheme not in _DEFAULT_PORTS:
                raise OutboundRefusedError(f"refused: a redirect to {url.scheme or 'no'} scheme")
            if _becomes_get(response.status, method):
                method, content = "GET", None
            if _origin(url) != origin:
                headers = _off_origin(headers, request.secret_names)
        async with response:
            snippet = bytearray()
            async for chunk in response.content.iter_any():
                if len(snippet) < self._snippet_bytes:
                    snippet.extend(chunk[: self._snippet_bytes - len(snippet)])
        return AttemptResult(
            duration_ms=_elapsed_ms(started),
            status_code=response.status,
            headers=_headers_of(response),
            body_snippet=snippet.decode("utf-8", errors="replace"),
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


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


def _becomes_get(status: int, method: str) -> bool:
    """A 303 is followed with a GET (a HEAD stays one); so is a POST's 301 or 302."""
    return (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST")


def _off_origin(headers: dict[str, str], secret_names: frozenset[str]) -> dict[str, str]:
    """The headers a redirect to another origin carries: not Authorization, and not the call's
    secret headers (their values go in clear to the call's own origin only)."""
    return {
        name: value
        for name, value in headers.items()
        if name.lower() != "authorization" and name.lower() not in secret_names
    }


def _headers_of(response: aiohttp.ClientResponse) -> dict[str, str]:
    """The answer's headers by lower-cased name, a repeated one's values joined by ", "."""
    joined: dict[str, str] = {}
    for name, value in response.headers.items():
        key = name.lower()
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    return joined


@lru_cache(maxsize=1024)
def _parsed(url: str) -> URL:
    """A call's URL, parsed once: yarl's URL is immutable, and the calls to one endpoint share
    it."""
    return URL(url)


def _origin(url: URL) -> Origin:
    return url.scheme, url.host or "", url.port or _DEFAULT_PORTS.get(url.scheme)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _failure(started: float, kind: ErrorKind, message: str) -> AttemptResult:
    return AttemptResult(duration_ms=_elapsed_ms(started), error_kind=kind, message=message)
