"""The benchmark's load generator (scripts/bench.py): the calls' payloads, and httpx clients
(in this process) that POST them one by one or in batches, recording ids, latencies and
errors: with ``concurrency`` clients as fast as answered, in batches, open-loop at a fixed rate
(``post_open_loop``: each send scheduled by the clock, whatever the answers before it, and how
late each send left recorded) or one after another on one keep-alive connection
(``post_sequential``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import httpx
import orjson
from bench_stack import BenchError, Stack

T = TypeVar("T")


def run_async(coro: Awaitable[T]) -> T:
    """Run a coroutine on a fresh event loop (uvloop when installed)."""
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop

    async def wrapper() -> T:
        return await coro

    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(wrapper())


def load_generator(kind: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    timeout = httpx.Timeout(120.0)
    if kind == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport(limits=limits, trust_env=False)
        return httpx.AsyncClient(transport=transport, limits=limits, timeout=timeout,
                                 trust_env=False)
    return httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False)


def call_payload(target_url: str, index: int, *, due_at: datetime | None = None,
                 delay_seconds: float | None = None, body_bytes: int = 0) -> dict[str, Any]:
    """A call POSTing ``{"n": index}`` to the target (padded to ``body_bytes`` bytes of JSON
    with a ``"pad"`` member when that is larger)."""
    body: dict[str, Any] = {"n": index}
    if body_bytes:
        bare = len(json.dumps({"n": index, "pad": ""}, separators=(",", ":")))
        body["pad"] = "x" * max(0, body_bytes - bare)
    payload: dict[str, Any] = {
        "name": "bench",
        "request": {"method": "POST", "url": f"{target_url}/hook", "body": body,
                    "timeout_seconds": 10},
    }
    if due_at is not None:
        payload["due_at"] = due_at.isoformat()
    if delay_seconds is not None:
        payload["delay_seconds"] = delay_seconds
    return payload


@dataclass
class Submitted:
    ids: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: float = 0.0  # time.monotonic()
    started_wall: float = 0.0  # time.time()
    finished: float = 0.0

    @property
    def seconds(self) -> float:
        return max(1e-9, self.finished - self.started)


async def post_batches(
    client: httpx.AsyncClient, api_urls: Sequence[str], api_key: str,
    payloads: Sequence[dict[str, Any]], batch_size: int, concurrency: int,
    progress: Callable[[int], None] | None = None,
) -> Submitted:
    """POST the payloads in batches, ``concurrency`` requests at once; ids in payload order."""
    batches = [payloads[i:i + batch_size] for i in range(0, len(payloads), batch_size)]
    results: list[list[str]] = [[] for _ in batches]
    out = Submitted()
    next_batch = 0
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}

    async def sender() -> None:
        nonlocal next_batch
        while next_batch < len(batches):
            index = next_batch
            next_batch += 1
            body = orjson.dumps({"calls": batches[index]})
            url = f"{api_urls[index % len(api_urls)]}/v1/service-calls:batch"
            began = time.perf_counter()
            response = await client.post(url, content=body, headers=headers)
            out.latencies_ms.append((time.perf_counter() - began) * 1000)
            if response.status_code != 201:
                raise BenchError(f"batch {index}: HTTP {response.status_code}: "
                                 f"{response.text[:500]}")
            results[index] = [item["id"] for item in orjson.loads(response.content)["items"]]
            if progress:
                progress(len(batches[index]))

    out.started, out.started_wall = time.monotonic(), time.time()
    await asyncio.gather(*(sender() for _ in range(min(concurrency, len(batches)))))
    out.finished = time.monotonic()
    out.ids = [i for batch in results for i in batch]
    return out


async def post_singles(
    client: httpx.AsyncClient, api_urls: Sequence[str], api_key: str, count: int,
    concurrency: int, make: Callable[[int], dict[str, Any]],
    progress: Callable[[int], None] | None = None,
) -> Submitted:
    out = Submitted()
    next_index = 0
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}

    async def client_loop() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            body = orjson.dumps(make(index))
            url = f"{api_urls[index % len(api_urls)]}/v1/service-calls"
            began = time.perf_counter()
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as error:
                out.errors.append(f"{type(error).__name__}: {error}")
                continue
            out.latencies_ms.append((time.perf_counter() - began) * 1000)
            if response.status_code == 201:
                out.ids.append(orjson.loads(response.content)["id"])
            else:
                out.errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
            if progress and index % 100 == 0:
                progress(100)

    out.started, out.started_wall = time.monotonic(), time.time()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    out.finished = time.monotonic()
    return out


@dataclass
class Paced(Submitted):
    """An open-loop run: besides ``Submitted``, each created call's (id, sent at, due at) in
    wall-clock seconds, and how late each send left against its schedule."""

    calls: list[tuple[str, float, float]] = field(default_factory=list)
    send_late_ms: list[float] = field(default_factory=list)
    waited_for_slot: int = 0  # sends held back because max_in_flight were unanswered
    peak_in_flight: int = 0


def note_answer(out: Paced | Sequential, response: httpx.Response, sent: float) -> None:
    """A single submit's answer: the created call (id, sent at, due at), or the error."""
    if response.status_code == 201:
        data = orjson.loads(response.content)
        out.ids.append(data["id"])
        out.calls.append((data["id"], sent, _due_of(data)))
    else:
        out.errors.append(f"HTTP {response.status_code}: {response.text[:200]}")


def _due_of(data: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(data["due_at"]).replace("Z", "+00:00")).timestamp()


async def post_open_loop(
    client: httpx.AsyncClient, api_urls: Sequence[str], api_key: str, rate: float, count: int,
    make: Callable[[int], dict[str, Any]], max_in_flight: int,
    progress: Callable[[int], None] | None = None,
) -> Paced:
    """POST ``count`` single calls at ``rate`` per second, open loop: send i leaves at
    start + i / rate by the clock, in a task of its own, whether or not earlier ones were
    answered (at most ``max_in_flight`` unanswered: beyond that a send waits, and is counted
    in ``waited_for_slot`` and in its lateness). Bodies are encoded before the first send."""
    out = Paced()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    bodies = [orjson.dumps(make(i)) for i in range(count)]
    slots = asyncio.Semaphore(max_in_flight)
    in_flight = 0
    tasks: set[asyncio.Task[None]] = set()

    async def send(index: int) -> None:
        nonlocal in_flight
        in_flight += 1
        out.peak_in_flight = max(out.peak_in_flight, in_flight)
        sent = time.time()
        began = time.perf_counter()
        try:
            response = await client.post(f"{api_urls[index % len(api_urls)]}/v1/service-calls",
                                         content=bodies[index], headers=headers)
        except httpx.HTTPError as error:
            out.errors.append(f"{type(error).__name__}: {error}")
            return
        finally:
            in_flight -= 1
            slots.release()
        out.latencies_ms.append((time.perf_counter() - began) * 1000)
        note_answer(out, response, sent)
        if progress:
            progress(1)

    # the schedule by time.monotonic(), not loop.time(): uvloop's clock has 1 ms steps
    start = time.monotonic() + 0.05
    out.started, out.started_wall = start, time.time() + 0.05
    for index in range(count):
        at = start + index / rate
        while (delay := at - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        if slots.locked():
            out.waited_for_slot += 1
        await slots.acquire()
        out.send_late_ms.append((time.monotonic() - at) * 1000)
        task = asyncio.create_task(send(index))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    out.finished = time.monotonic()
    return out


@dataclass
class Sequential(Submitted):
    """One client after another on one connection: besides ``Submitted``, each created call's
    (id, sent at, due at) and how many connections were opened (1 when kept alive)."""

    calls: list[tuple[str, float, float]] = field(default_factory=list)
    connections_opened: int = 0


def post_sequential(api_url: str, api_key: str, count: int, make: Callable[[int], dict[str, Any]],
                    progress: Callable[[int], None] | None = None) -> Sequential:
    """POST ``count`` single calls one after another, each as soon as the one before was
    answered, with one synchronous httpx client holding one keep-alive connection (opened by
    an untimed first request, which creates a call too: ``make(count)``)."""
    out = Sequential()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    bodies = [orjson.dumps(make(i)) for i in range(count + 1)]

    def trace(event: str, _info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            out.connections_opened += 1

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    url = f"{api_url}/v1/service-calls"
    with httpx.Client(limits=limits, timeout=60.0, trust_env=False, headers=headers) as client:
        first = client.post(url, content=bodies[count], extensions={"trace": trace})
        if first.status_code != 201:
            raise BenchError(f"sequential: HTTP {first.status_code}: {first.text[:300]}")
        out.ids.append(orjson.loads(first.content)["id"])
        out.started, out.started_wall = time.monotonic(), time.time()
        for index in range(count):
            sent = time.time()
            began = time.perf_counter()
            try:
                response = client.post(url, content=bodies[index], extensions={"trace": trace})
            except httpx.HTTPError as error:
                out.errors.append(f"{type(error).__name__}: {error}")
                continue
            out.latencies_ms.append((time.perf_counter() - began) * 1000)
            note_answer(out, response, sent)
            if progress and index % 50 == 0:
                progress(50)
        out.finished = time.monotonic()
    return out


def submit_batches(args: argparse.Namespace, stack: Stack, tenant: str,
                   payloads: Sequence[dict[str, Any]], progress: Callable[[int], None] | None
                   ) -> Submitted:
    """POST ``payloads`` as ``tenant`` (with its key: ``stack.key_for`` issues it before the
    first batch is timed, if the phase did not already)."""
    api_key = stack.key_for(tenant)

    async def go() -> Submitted:
        connections = args.batch_concurrency * len(stack.apis)
        async with load_generator(args.client, connections) as client:
            return await post_batches(client, stack.api_urls, api_key, payloads,
                                      args.batch_size, args.batch_concurrency, progress)

    return run_async(go())
