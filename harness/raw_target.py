"""A raw-socket HTTP target that records the exact bytes it receives, per connection.

    with RawTarget() as target:
        ...  # send requests to target.url
        connections = target.received()  # list[bytes], one per connection, in order

It answers each request it can frame by Content-Length (``200 ok``) and keeps reading until
the client closes or is idle for ``idle_seconds``: whatever else arrives (a second, smuggled
request) is in the recorded bytes too. ``ScriptedTarget`` underneath runs any script per
connection (a target that misbehaves in one chosen way).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from types import TracebackType

_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class RawTarget:
    def __init__(self, idle_seconds: float = 0.5) -> None:
        self._idle = idle_seconds
        self._connections: list[bytearray] = []
        self._lock = threading.Lock()
        self._server = ScriptedTarget(self._serve)
        self.url = self._server.url

    def __enter__(self) -> RawTarget:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.close()

    def received(self) -> list[bytes]:
        """What each connection sent, once every connection has gone idle or closed."""
        self._server.join(timeout=10)
        with self._lock:
            return [bytes(data) for data in self._connections]

    def _serve(self, conn: socket.socket) -> None:
        data = bytearray()
        with self._lock:
            self._connections.append(data)
        conn.settimeout(self._idle)
        answered = 0  # bytes of ``data`` already framed and answered
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    return
                if not chunk:
                    return
                with self._lock:
                    data.extend(chunk)
                answered += _answer_complete(conn, bytes(data[answered:]))


def _answer_complete(conn: socket.socket, pending: bytes) -> int:
    """Answer each complete request (head + Content-Length body) at the start of ``pending``;
    the bytes consumed."""
    consumed = 0
    while (end := pending.find(b"\r\n\r\n", consumed)) >= 0:
        length = content_length(pending[consumed:end])
        if len(pending) < end + 4 + length:
            break
        consumed = end + 4 + length
        conn.sendall(_ANSWER)
    return consumed


def content_length(head: bytes) -> int:
    """The Content-Length a request head declares (0 if none; the first if several)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip() or b"0")
    return 0


class ScriptedTarget:
    """A loopback TCP server that runs ``script(conn)`` on each connection it accepts (on a
    thread of its own): a target that misbehaves in exactly one way, for the sender's tests.
    ``close`` stops accepting and closes every connection the scripts left open."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self._script = script
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed
                return
            self._connections.append(conn)
            thread = threading.Thread(target=self._script, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the scripts of the connections accepted so far to end."""
        for thread in list(self._threads):
            thread.join(timeout=timeout)

    def close(self) -> None:
        self._listener.close()
        for conn in self._connections:
            conn.close()
