"""End to end: the live event stream (`GET /v1/events/stream`) of a real `duecall serve` over
real HTTP, and `duecall watch` following it.

Each test uses tenants of its own (the server and its database are shared by the module).
"""

import asyncio
import json
import queue
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from harness.api_keys import bearer, issue_tenant_key
from harness.duecall_process import DuecallProcess
from harness.processes import duecall_command, duecall_env
from harness.target_server import TargetServer
from interfaces import cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

STREAM = "/v1/events/stream"
HEARTBEAT_SECONDS = 0.3
SUBSCRIBERS = 50


@pytest.fixture(scope="module")
def duecall_server(database_url: str) -> Iterator[DuecallProcess]:
    """`duecall serve` with quick heartbeats."""
    settings = {"DUECALL_EVENT_STREAM_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS)}
    with DuecallProcess(database_url, extra_env=settings) as server:
        yield server


@pytest.fixture
def new_key(duecall_server: DuecallProcess) -> Callable[[], str]:
    """``new_key()``: an API key of a new tenant."""
    return lambda: issue_tenant_key(duecall_server.url, f"es-{uuid.uuid4().hex[:10]}")


@dataclass
class Message:
    id: str | None = None
    event: str | None = None
    data: Any = None


@dataclass
class Stream:
    """An open event stream: its messages, and how many heartbeats came."""

    response: httpx.Response
    lines: AsyncIterator[str]
    heartbeats: int = 0
    start: int | None = None  # the position the stream starts after (its opening id)
    _pending: list[Message] = field(default_factory=list)

    async def next(self, timeout: float = 10.0) -> Message:
        """The next message with data (an event)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self._message()
                if message.data is not None:
                    return message
                if self.start is None and message.id is not None:
                    self.start = int(message.id)

    async def events_until(self, done: Callable[[Any], bool], timeout: float = 15.0) -> list[Any]:
        """Events (their data) up to and including the first for which ``done`` holds."""
        found = []
        async with asyncio.timeout(timeout):
            while True:
                message = await self.next(timeout)
                assert message.id == str(message.data["position"])
                assert message.event == message.data["type"]
                found.append(message.data)
                if done(message.data):
                    return found

    async def quiet_for(self, seconds: float) -> list[Any]:
        """The events that came within ``seconds`` (expected: none)."""
        found: list[Any] = []
        with pytest.raises(TimeoutError):
            await self._collect(found, seconds)
        return found

    async def _collect(self, found: list[Any], seconds: float) -> None:
        async with asyncio.timeout(seconds):
            while True:
                found.append((await self.next(seconds)).data)

    async def _message(self) -> Message:
        message, seen = Message(), False
        async for line in self.lines:
            if line == ": heartbeat":
                self.heartbeats += 1
            elif line.startswith(":"):
                continue
            elif not line:
                if seen:
                    return message
            else:
                name, _, value = line.partition(": ")
                seen = True
                if name == "data":
                    message.data = json.loads(value)
                elif name in ("id", "event"):
                    setattr(message, name, value)
        raise EOFError("the stream ended")


@asynccontextmanager
async def stream(
    base_url: str, key: str | None = None, *, opened: bool = True, **params: Any
) -> AsyncIterator[Stream]:
    """An open stream (with ``opened``: once its opening message came)."""
    headers = bearer(key) if key else {}
    headers.update(params.pop("headers", {}))
    timeout = httpx.Timeout(30.0, connect=5.0)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=timeout) as client,
        client.stream("GET", STREAM, params=params, headers=headers) as response,
    ):
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        opened_stream = Stream(response, response.aiter_lines())
        if opened:
            async with asyncio.timeout(10):
                first = await opened_stream._message()
            assert first.data is None  # the opening message: only where it starts
            assert first.id is not None
            opened_stream.start = int(first.id)
        yield opened_stream


async def submit(base_url: str, key: str, target: TargetServer, path: str = "/ok") -> str:
    body = {"name": "streamed", "request": {"method": "GET", "url": f"{target.url}{path}"}}
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(key), timeout=10) as client:
        answer = await client.post("/v1/service-calls", json=body)
    assert answer.status_code == 201, answer.text
    call_id: str = answer.json()["id"]
    return call_id


def history_positions(api: httpx.Client, key: str, *call_ids: str) -> list[int]:
    """Every event position of these calls (and their executions), from the history."""
    positions = []
    for call_id in call_ids:
        answer = api.get(f"/v1/service-calls/{call_id}/events", headers=bearer(key))
        positions += [item["position"] for item in answer.json()["items"]]
    return sorted(positions)


def succeeded(call_id: str) -> Callable[[Any], bool]:
    return lambda e: e["type"] == "ServiceCall.Succeeded" and e["service_call_id"] == call_id


def test_a_subscriber_gets_new_events_in_order_with_their_positions(
    duecall_server: DuecallProcess, api: httpx.Client, target: TargetServer,
    new_key: Callable[[], str],
) -> None:
    key = new_key()

    async def scenario() -> tuple[int | None, list[Any], str]:
        async with stream(duecall_server.url, key) as live:
            call_id = await submit(duecall_server.url, key, target)
            return live.start, await live.events_until(succeeded(call_id)), call_id

    start, events, call_id = asyncio.run(scenario())
    positions = [e["position"] for e in events]
    assert start is not None
    assert positions[0] > start
    assert positions == history_positions(api, key, call_id)  # each once, in log order
    types = [e["type"] for e in events]
    assert types[:1] == ["ServiceCall.Submitted"]
    # the two Started events in the order they happened (a deferred start: one transaction)
    assert sorted(types[1:3]) == ["Execution.Started", "ServiceCall.Started"]
    assert types[3:] == ["Execution.Succeeded", "ServiceCall.Succeeded"]
    assert {e["service_call_id"] for e in events} == {call_id}
    started = events[types.index("Execution.Started")]
    assert started["aggregate_type"] == "Execution"
    assert started["aggregate_id"] != call_id
    assert started["originator_version"] == 1
    assert started["payload"]["url"] == f"{target.url}/ok"
    assert events[3]["payload"]["status_code"] == 200
    assert events[0]["timestamp"].endswith("Z")


def test_secret_headers_are_redacted_on_the_stream(
    duecall_server: DuecallProcess, target: TargetServer, new_key: Callable[[], str]
) -> None:
    key = new_key()
    body = {"request": {"url": f"{target.url}/ok",
                        "headers": {"Authorization": "Bearer s3cret-token", "X-Token": "t0k"},
                        "secret_headers": ["X-Token"]}}

    async def scenario() -> list[Any]:
        async with stream(duecall_server.url, key) as live:
            async with httpx.AsyncClient(base_url=duecall_server.url, headers=bearer(key)) as c:
                call_id = (await c.post("/v1/service-calls", json=body)).json()["id"]
            return await live.events_until(succeeded(call_id))

    events = asyncio.run(scenario())
    text = json.dumps(events)
    for secret in ("s3cret-token", "t0k", "enc:v1:"):
        assert secret not in text
    assert events[0]["payload"]["headers"]["Authorization"] == "[REDACTED]"
    assert events[0]["payload"]["headers"]["X-Token"] == "[REDACTED]"


def test_reconnecting_with_last_event_id_misses_nothing_and_repeats_nothing(
    duecall_server: DuecallProcess, api: httpx.Client, target: TargetServer,
    new_key: Callable[[], str],
) -> None:
    key = new_key()
    url = duecall_server.url

    async def scenario() -> tuple[list[str], list[int], list[int], list[int]]:
        async with stream(url, key) as first:
            one = await submit(url, key, target)
            seen = [(await first.next()).data["position"] for _ in range(2)]
        # disconnected: call one goes on, call two is recorded from start to end
        two = await submit(url, key, target)
        await asyncio.to_thread(wait_until, lambda: _status(api, key, two) == "succeeded", 15)
        await asyncio.to_thread(wait_until, lambda: _status(api, key, one) == "succeeded", 15)
        last = seen[-1]
        # the header wins over ?after=0 (an EventSource reconnects to the same URL)
        headers = {"Last-Event-ID": str(last)}
        async with stream(url, key, headers=headers, after=0) as again:
            resumed = await again.events_until(
                lambda e: e["position"] == max(history_positions(api, key, one, two)))
            assert await again.quiet_for(2 * HEARTBEAT_SECONDS) == []
        async with stream(url, key, last_event_id=last) as by_query:
            by_param = await by_query.events_until(
                lambda e: e["position"] == resumed[-1]["position"])
        return [one, two], seen, [e["position"] for e in resumed], [
            e["position"] for e in by_param]

    (one, two), seen, resumed, by_param = asyncio.run(scenario())
    everything = history_positions(api, key, one, two)
    assert len(seen) == 2
    assert seen + resumed == everything  # no gap, no duplicate
    assert by_param == resumed


def _status(api: httpx.Client, key: str, call_id: str) -> str:
    status: str = api.get(f"/v1/service-calls/{call_id}", headers=bearer(key)).json()["status"]
    return status


def test_a_tenant_never_sees_another_tenants_events(
    duecall_server: DuecallProcess, api: httpx.Client, target: TargetServer,
    new_key: Callable[[], str],
) -> None:
    key_a, key_b = new_key(), new_key()
    url = duecall_server.url

    async def scenario() -> tuple[list[Any], list[Any], str, str]:
        async with stream(url, key_b) as live_b:
            call_a = await submit(url, key_a, target)
            await asyncio.to_thread(wait_until, lambda: _status(api, key_a, call_a) == "succeeded",
                                    15)
            call_b = await submit(url, key_b, target)
            live = await live_b.events_until(succeeded(call_b))
        async with stream(url, key_b, after=0) as replay_b:  # catching up reads too
            replayed = await replay_b.events_until(succeeded(call_b))
        return live, replayed, call_a, call_b

    live, replayed, call_a, call_b = asyncio.run(scenario())
    for events in (live, replayed):
        assert {e["service_call_id"] for e in events} == {call_b}
        assert call_a not in json.dumps(events)
    assert [e["position"] for e in replayed] == history_positions(api, key_b, call_b)


def test_call_and_type_filters(
    duecall_server: DuecallProcess, api: httpx.Client, target: TargetServer,
    new_key: Callable[[], str],
) -> None:
    key = new_key()
    url = duecall_server.url

    async def scenario() -> tuple[str, str, list[Any], list[Any], list[Any]]:
        one = await submit(url, key, target)
        two = await submit(url, key, target, "/status/404")
        for call in (one, two):
            await asyncio.to_thread(
                wait_until, lambda c=call: _status(api, key, c) in ("succeeded", "failed"), 15)
        async with stream(url, key, after=0, call_id=two) as of_two:
            by_call = await of_two.events_until(lambda e: e["type"] == "ServiceCall.Failed")
            assert await of_two.quiet_for(2 * HEARTBEAT_SECONDS) == []
        types = ["ServiceCall.Submitted,ServiceCall.Failed", "Execution.Failed"]
        async with stream(url, key, after=0, type=types) as typed:
            by_type = await typed.events_until(lambda e: e["type"] == "ServiceCall.Failed")
            assert await typed.quiet_for(2 * HEARTBEAT_SECONDS) == []
        async with stream(url, key, after=0, call_id=one, type="ServiceCall.Succeeded") as both:
            by_both = await both.events_until(lambda e: True)
        return one, two, by_call, by_type, by_both

    one, two, by_call, by_type, by_both = asyncio.run(scenario())
    assert [e["position"] for e in by_call] == history_positions(api, key, two)
    assert {e["service_call_id"] for e in by_call} == {two}
    assert "Execution.Failed" in {e["type"] for e in by_call}
    assert [(e["type"], e["service_call_id"]) for e in by_type] == [
        ("ServiceCall.Submitted", one), ("ServiceCall.Submitted", two),
        ("Execution.Failed", two), ("ServiceCall.Failed", two),
    ]
    assert [(e["type"], e["service_call_id"]) for e in by_both] == [
        ("ServiceCall.Succeeded", one)]


def test_heartbeats_keep_a_quiet_stream_alive(
    duecall_server: DuecallProcess, new_key: Callable[[], str]
) -> None:
    async def scenario() -> int:
        async with stream(duecall_server.url, new_key()) as quiet:
            assert await quiet.quiet_for(4 * HEARTBEAT_SECONDS) == []
            return quiet.heartbeats

    assert asyncio.run(scenario()) >= 2


def _metrics(api: httpx.Client) -> dict[str, float]:
    text = api.get("/metrics").text
    found = re.findall(r'^(duecall_event_stream_\w+(?:\{[^}]*\})?) (\S+)$', text, re.MULTILINE)
    return {name: float(value) for name, value in found}


def _connections(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                           "current_database()").fetchone()
    return int(row[0]) if row else 0


def test_many_subscribers_share_one_tail(
    duecall_server: DuecallProcess, api: httpx.Client, target: TargetServer,
    new_key: Callable[[], str], database_url: str,
) -> None:
    key = new_key()
    url = duecall_server.url
    before = _metrics(api)
    connections_before = _connections(database_url)

    async def scenario() -> tuple[list[list[int]], dict[str, float], int]:
        async with AsyncExitStack() as streams:
            opened = await asyncio.gather(
                *(streams.enter_async_context(stream(url, key)) for _ in range(SUBSCRIBERS)))
            during = await asyncio.to_thread(_metrics, api)
            connections = await asyncio.to_thread(_connections, database_url)
            call_id = await submit(url, key, target)
            seen = await asyncio.gather(*(o.events_until(succeeded(call_id)) for o in opened))
            return [[e["position"] for e in s] for s in seen], during, connections

    seen, during, connections = asyncio.run(scenario())
    assert all(positions == seen[0] for positions in seen)
    assert len(seen[0]) == 5
    assert during["duecall_event_stream_subscribers"] >= SUBSCRIBERS
    assert during["duecall_event_stream_tails_running"] == 1
    started = "duecall_event_stream_tails_started_total"
    assert during[started] - before.get(started, 0) <= 1
    catch_up = 'duecall_event_stream_reads_total{reader="catch_up"}'
    assert during.get(catch_up, 0) == before.get(catch_up, 0)  # nobody read on their own
    assert connections - connections_before < SUBSCRIBERS // 2  # not one per subscriber


def test_refusals_401_and_422_name_the_field(
    duecall_server: DuecallProcess, new_key: Callable[[], str]
) -> None:
    key = new_key()
    with httpx.Client(base_url=duecall_server.url, timeout=10) as client:
        assert client.get(STREAM).status_code == 401
        assert client.get(STREAM, params={"access_token": "dc_nope_x_y"}).status_code == 401
        bad = {
            "type": {"type": "ServiceCall.Bogus"},
            "call_id": {"call_id": "not-a-uuid"},
            "after": {"after": "-1"},
            "last_event_id": {"last_event_id": "x"},
        }
        for field_name, params in bad.items():
            answer = client.get(STREAM, params=params, headers=bearer(key))
            assert answer.status_code == 422, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert [e["field"] for e in answer.json()["errors"]] == [field_name]
        answer = client.get(STREAM, headers={**bearer(key), "Last-Event-ID": "abc"})
        assert answer.status_code == 422
        assert [e["field"] for e in answer.json()["errors"]] == ["Last-Event-ID"]

    async def with_access_token() -> int | None:  # a browser's EventSource sends no header
        async with stream(duecall_server.url, access_token=key) as live:
            return live.start

    assert asyncio.run(with_access_token()) is not None


def test_duecall_watch_prints_events_as_json_lines(
    duecall_server: DuecallProcess, api: httpx.Client, target: TargetServer,
    new_key: Callable[[], str],
) -> None:
    key = new_key()
    call_id = asyncio.run(submit(duecall_server.url, key, target))
    wait_until(lambda: _status(api, key, call_id) == "succeeded", 15)
    watch = subprocess.Popen(
        duecall_command("watch", "--json", "--from", "0", "--url", duecall_server.url),
        env={**duecall_env(duecall_server.database_url), "DUECALL_API_KEY": key},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    printed: queue.Queue[str] = queue.Queue()
    assert watch.stdout is not None

    def read() -> None:
        for line in watch.stdout or []:
            printed.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        lines = [json.loads(printed.get(timeout=15)) for _ in range(5)]
    finally:
        watch.send_signal(signal.SIGINT)
        _, err = watch.communicate(timeout=10)
    assert [e["position"] for e in lines] == history_positions(api, key, call_id)
    assert lines[-1]["type"] == "ServiceCall.Succeeded"
    assert watch.returncode == 0, err
    assert "Traceback" not in err


def test_duecall_watch_says_why_in_one_sentence(duecall_server: DuecallProcess) -> None:
    args = ["watch", "--url", duecall_server.url, "--api-key", "dc_x_y_z"]
    result = CliRunner().invoke(cli.app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "API key was refused" in result.output
    assert "Traceback" not in result.output
    assert CliRunner().invoke(cli.app, ["watch", "--type", "Nope", "--url", duecall_server.url,
                                        "--api-key", "dc_x_y_z"]).exit_code == 1


def test_shutdown_ends_open_streams(database_url: str, new_key: Callable[[], str]) -> None:
    key = new_key()  # tenants live in the database: another API process knows them
    with DuecallProcess(database_url, command="api") as api_only:

        async def scenario() -> None:
            async with stream(api_only.url, key) as live:
                started = time.monotonic()
                await asyncio.to_thread(api_only.stop)
                with pytest.raises(EOFError):
                    await live.next(10)
                assert time.monotonic() - started < 8

        asyncio.run(scenario())
        assert not api_only.killed  # it exited by itself, not after the SIGKILL
