#!/usr/bin/env python
"""A fast local HTTP target for scripts/bench.py: asyncio, HTTP/1.1 keep-alive, 200 to all.

    .venv/bin/python scripts/bench_target.py --port 0 --port-file /tmp/target.port

Every request (except the ``/__`` endpoints below) is answered ``200 {"ok":true}`` at once and
recorded: its arrival time (``time.time()`` when its head was read), its ``Idempotency-Key``
header, method and path.

    GET /__records?since=N   {"records": [[arrival, key, method, path], ...], "next": M}
    GET /__count             {"count": n}

Bound to loopback only. Stops on SIGTERM/SIGINT (records can also be dumped with ``--dump``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
OK_BODY = b'{"ok":true}'
OK_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(OK_BODY)).encode() + b"\r\n\r\n" + OK_BODY
)

Record = tuple[float, str | None, str, str]


class Target:
    def __init__(self) -> None:
        self.records: list[Record] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                arrival = time.time()
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
                    return
                method, target, _version = parts
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                if not await self._read_body(reader, headers):
                    return
                if target.startswith("/__"):
                    writer.write(self._control(target))
                else:
                    self.records.append(
                        (arrival, headers.get("idempotency-key"), method, urlsplit(target).path)
                    )
                    writer.write(OK_RESPONSE)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.CancelledError):
            return  # a client went away, or the server is shutting down
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bool:
        """Consume the body (Content-Length or chunked); False when the connection broke."""
        try:
            if "chunked" in headers.get("transfer-encoding", "").lower():
                while True:
                    size_line = await reader.readuntil(b"\r\n")
                    size = int(size_line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                            pass
                        return True
                    await reader.readexactly(size + 2)
            length = int(headers.get("content-length") or 0)
            if length > MAX_BODY:
                return False
            if length:
                await reader.readexactly(length)
            return True
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                ConnectionError):
            return False

    def _control(self, target: str) -> bytes:
        url = urlsplit(target)
        if url.path == "/__count":
            payload: object = {"count": len(self.records)}
        elif url.path == "/__records":
            since = int(parse_qs(url.query).get("since", ["0"])[0])
            payload = {"records": self.records[since:], "next": len(self.records)}
        else:
            body = b'{"error":"unknown control path"}'
            return (b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        body = json.dumps(payload, separators=(",", ":")).encode()
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def serve(host: str, port: int, port_file: Path | None, dump: Path | None) -> None:
    target = Target()
    server = await asyncio.start_server(
        target.handle, host, port, limit=MAX_HEAD, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    if port_file is not None:
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(bound))
        tmp.replace(port_file)  # atomic: the reader never sees a partial number
    print(f"bench target on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    if dump is not None:
        dump.write_text(json.dumps(target.records))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface (loopback only)")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--port-file", type=Path, help="write the bound port to this file")
    parser.add_argument("--dump", type=Path, help="write the records as JSON here on exit")
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("the bench target binds loopback only")
    coro = serve(args.host, args.port, args.port_file, args.dump)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    main()
