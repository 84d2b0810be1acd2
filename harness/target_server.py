"""A real local HTTP server in the test's own process that duecall can call during tests.

    with TargetServer() as target:
        target.set_sequence("flaky", [503, 503, 200])
        ...  # schedule calls to f"{target.url}/sequence/flaky"
        requests = target.wait_for(3, path="/sequence/flaky")

Paths:
    /ok                      200 {"ok": true}
    /status/<code>           <code> {"status": <code>}
    /echo                    200 {"method", "path", "query", "headers", "body"}
    /slow/<seconds>          sleeps (only that request's thread), then 200 {"ok": true}
    /retry-after/<seconds>   503 with "Retry-After: <seconds>"
    /sequence/<name>         successive codes from set_sequence(name, ...); the last repeats
    /redirect?to=<url>       302 to <url> (/redirect/<code>?to=<url> for another 3xx code)
    /large/<bytes>           200 with a body of <bytes> "x" (streamed in 64 KiB writes)
    /token                   200 {"token": <a new random token>} (``issued_tokens`` lists them)
    anything else            200 {"ok": true}

Every request is recorded (before any sleep) as a ReceivedRequest.

Over 300 lines on purpose: one path per behaviour the tests need, all answered by one
handler, so the table above is the whole server.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from harness.network import HOST

_NO_BODY_STATUSES = frozenset({204, 304})


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # keys lowercased; repeated headers joined with ", "
    body: bytes
    received_at: float  # time.time() when the request arrived

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


class TargetServer:
    """Threaded HTTP server on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(self, port: int = 0, host: str = HOST) -> None:
        """``host``: another loopback address (127.0.0.2) to stand for a second machine."""
        self._host = host
        self._port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._requests: list[ReceivedRequest] = []
        self._sequences: dict[str, tuple[list[int], int]] = {}
        self._changed = threading.Condition()
        self.issued_tokens: list[str] = []  # by /token, in order

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> TargetServer:
        if self._httpd is not None:
            raise RuntimeError("TargetServer already started")
        self._httpd = _HTTPServer((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"target-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        thread.join(timeout=5)

    def __enter__(self) -> TargetServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("TargetServer is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    # -- configuration ----------------------------------------------------------

    def set_sequence(self, name: str, statuses: list[int]) -> None:
        """Make /sequence/<name> answer these codes in turn, then repeat the last one."""
        if not statuses:
            raise ValueError("statuses must not be empty")
        with self._changed:
            self._sequences[name] = (list(statuses), 0)

    def _next_in_sequence(self, name: str) -> int:
        with self._changed:
            statuses, index = self._sequences.get(name, ([200], 0))
            self._sequences[name] = (statuses, index + 1)
            return statuses[min(index, len(statuses) - 1)]

    # -- recorded requests ------------------------------------------------------

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._changed:
            return list(self._requests)

    def requests_for(self, path: str) -> list[ReceivedRequest]:
        with self._changed:
            return [r for r in self._requests if r.path == path]

    def clear(self) -> None:
        with self._changed:
            self._requests.clear()

    def wait_for(
        self, count: int, path: str | None = None, timeout: float = 10.0
    ) -> list[ReceivedRequest]:
        """Block until at least `count` requests (to `path`, if given) arrived; return them."""

        def matching() -> list[ReceivedRequest]:
            return [r for r in self._requests if path is None or r.path == path]

        with self._changed:
            if self._changed.wait_for(lambda: len(matching()) >= count, timeout=timeout):
                return matching()
            got = len(matching())
        where = f" for {path}" if path is not None else ""
        raise TimeoutError(f"expected {count} requests{where} within {timeout}s, got {got}")

    def _record(self, request: ReceivedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # don't wait for idle keep-alive connections on close
    request_queue_size = 1024  # load tests open many connections at once

    def __init__(self, address: tuple[str, int], target: TargetServer) -> None:
        self.target = target
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real targets

    def setup(self) -> None:
        super().setup()
        self._httpd.track(self.connection, open_=True)

    def finish(self) -> None:
        self._httpd.track(self.connection, open_=False)
        super().finish()

    @property
    def _httpd(self) -> _HTTPServer:
        return cast(_HTTPServer, self.server)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def _handle(self) -> None:
        received_at = time.time()
        url = urlsplit(self.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = ReceivedRequest(
            method=self.command,
            path=url.path,
            query=url.query,
            headers=headers,
            body=self._read_body(),
            received_at=received_at,
        )
        self._httpd.target._record(request)
        try:
            self._respond(request)
        except ValueError as error:  # malformed number in the path
            self._send(400, {"error": str(error)})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _respond(self, request: ReceivedRequest) -> None:
        kind, _, arg = request.path.strip("/").partition("/")
        if kind == "status" and arg:
            code = int(arg)
            if not 200 <= code <= 599:
                raise ValueError(f"unsupported status {code}")
            self._send(code, {"status": code})
        elif kind == "echo":
            echo = {
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "headers": request.headers,
                "body": request.text,
            }
            self._send(200, echo)
        elif kind == "slow" and arg:
            time.sleep(float(arg))
            self._send(200, {"ok": True})
        elif kind == "retry-after" and arg:
            self._send(503, {"status": 503}, {"Retry-After": arg})
        elif kind == "sequence" and arg:
            code = self._httpd.target._next_in_sequence(arg)
            self._send(code, {"status": code})
        elif kind == "redirect":
            location = parse_qs(request.query).get("to", ["/ok"])[0]
            code = int(arg) if arg else 302
            self._send(code, {"location": location}, {"Location": location})
        elif kind == "set-cookie":  # a session cookie: a client must not keep it for others
            self._send(200, {"ok": True}, {"Set-Cookie": "session=s3cr3t; Path=/"})
        elif kind == "large" and arg:
            self._send_large(int(arg))
        elif kind == "token":  # a secret the request never held: only the response has it
            token = f"tok-{secrets.token_hex(16)}"
            self._httpd.target.issued_tokens.append(token)
            self._send(200, {"token": token, "expires_in": 3600})
        else:
            self._send(200, {"ok": True})

    def _send_large(self, size: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        chunk = b"x" * 65536
        with contextlib.suppress(OSError):  # the client may stop reading early
            while size > 0:
                self.wfile.write(chunk[:size])
                size -= len(chunk)

    def _send(self, code: int, payload: object, headers: dict[str, str] | None = None) -> None:
        body = b"" if code in _NO_BODY_STATUSES else json.dumps(payload).encode()
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if code not in _NO_BODY_STATUSES:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
