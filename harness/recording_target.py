#!/usr/bin/env python
"""A fast local HTTP target in a process of its own: records every delivery, misbehaves on
request (scripts/bench.py, scripts/chaos.py).

    .venv/bin/python -m harness.recording_target --port 0 --port-file /tmp/target.port

asyncio (uvloop when installed), HTTP/1.1 keep-alive, loopback only. How it answers depends on
the path and on the attempt number, read from the request's ``Idempotency-Key:
<service_call_id>:<attempt>``, so every delivery of one attempt (a duplicate after a crash
included) is answered alike:

    /fail/<n>/<token>                 503 for attempts 1..n, then 200
    /retry-after/<s>/<n>/<token>      503 with ``Retry-After: <s>`` for attempts 1..n, then 200
    /slow/<s>/<n>/<token>             sleeps <s> seconds for attempts 1..n (beyond the call's
                                      timeout), then answers 200
    /reset/<n>/<token>                resets the connection (TCP RST, no answer) for attempts
                                      1..n, then 200
    anything else                     200 at once

Every request is recorded before it is answered: ``[arrival, idempotency_key, duecall_id,
path, action]`` (``arrival``: ``time.time()`` when its head was read; ``action``: ok, 503,
slow, reset).

    GET /__records?since=N   {"records": [...], "next": M}
    GET /__count             {"count": n}

Stops on SIGTERM/SIGINT (``--dump`` writes the records as JSON then). ``fetch_records`` reads
them from another process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import struct
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
LOOPBACK = ("127.0.0.1", "::1", "localhost")

Record = tuple[float, str | None, str | None, str, str]


def _response(status: int, reason: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


OK = _response(200, "OK", b'{"ok":true}')
UNAVAILABLE = _response(503, "Service Unavailable", b'{"status":503}')
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def attempt_of(key: str | None) -> int:
    """The attempt number at the end of ``<service_call_id>:<attempt>`` (1 if unreadable)."""
    if not key:
        return 1
    try:
        return int(key.rpartition(":")[2])
    except ValueError:
        return 1


def plan(path: str, attempt: int) -> tuple[str, float]:
    """What to do for this path and attempt: (action, argument)."""
    parts = path.strip("/").split("/")
    kind, args = parts[0], parts[1:-1]  # the last part is the caller's token
    try:
        if kind == "fail" and len(args) == 1 and attempt <= int(args[0]):
            return "503", 0.0
        if kind == "retry-after" and len(args) == 2 and attempt <= int(args[1]):
            return "503-retry-after", float(args[0])
        if kind == "slow" and len(args) == 2 and attempt <= int(args[1]):
            return "slow", float(args[0])
        if kind == "reset" and len(args) == 1 and attempt <= int(args[0]):
            return "reset", 0.0
    except ValueError:
        return "ok", 0.0
    return "ok", 0.0


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
                    writer.write(BAD_REQUEST)
                    return
                target = parts[1]
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                if not await _read_body(reader, headers):
                    return
                path = urlsplit(target).path
                if path.startswith("/__"):
                    writer.write(self._control(target))
                    await writer.drain()
                    continue
                key = headers.get("idempotency-key")
                action, argument = plan(path, attempt_of(key))
                self.records.append(
                    (arrival, key, headers.get("duecall-id"), path, action.partition("-")[0])
                )
                if not await _answer(writer, action, argument):
                    return
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.CancelledError):
            return  # the client went away (a timeout), or the server is stopping
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _control(self, target: str) -> bytes:
        url = urlsplit(target)
        if url.path == "/__count":
            payload: object = {"count": len(self.records)}
        elif url.path == "/__records":
            since = int(parse_qs(url.query).get("since", ["0"])[0])
            payload = {"records": self.records[since:], "next": len(self.records)}
        else:
            return _response(404, "Not Found", b'{"error":"unknown control path"}')
        return _response(200, "OK", json.dumps(payload, separators=(",", ":")).encode())


async def _answer(writer: asyncio.StreamWriter, action: str, argument: float) -> bool:
    """Answer as planned; False when the connection is gone (reset)."""
    if action == "reset":
        _reset(writer)
        return False
    if action == "slow":
        await asyncio.sleep(argument)
    if action == "503":
        writer.write(UNAVAILABLE)
    elif action == "503-retry-after":
        writer.write(_response(503, "Service Unavailable", b'{"status":503}',
                               f"Retry-After: {argument:g}\r\n"))
    else:
        writer.write(OK)
    await writer.drain()
    return True


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST: linger on, zero seconds, then abort."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


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
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError):
        return False


async def serve(host: str, port: int, port_file: Path | None, dump: Path | None) -> None:
    target = Target()
    server = await asyncio.start_server(
        target.handle, host, port, limit=MAX_HEAD, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    if port_file is not None:
        draft = port_file.with_suffix(".tmp")
        draft.write_text(str(bound))
        draft.replace(port_file)  # atomic: the reader never sees a partial number
    print(f"recording target on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    if dump is not None:
        dump.write_text(json.dumps(target.records))


# -- reading the records from another process ---------------------------------------------------


def fetch_records(target_url: str, since: int = 0) -> list[list[Any]]:
    """The records from position ``since`` on, in order."""
    records: list[list[Any]] = []
    with httpx.Client(timeout=60.0, trust_env=False) as client:
        while True:
            data = client.get(f"{target_url}/__records", params={"since": since}).json()
            records.extend(data["records"])
            if data["next"] == since or not data["records"]:
                return records
            since = data["next"]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface (loopback only)")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--port-file", type=Path, help="write the bound port to this file")
    parser.add_argument("--dump", type=Path, help="write the records as JSON here on exit")
    args = parser.parse_args()
    if args.host not in LOOPBACK:
        parser.error("the recording target binds loopback only")
    coro = serve(args.host, args.port, args.port_file, args.dump)
    try:
        import uvloop  # noqa: PLC0415  (optional: the faster loop when installed)
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    main()
