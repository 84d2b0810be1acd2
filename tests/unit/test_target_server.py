from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness.network import closed_port_url
from harness.target_server import TargetServer


@pytest.fixture
def target() -> Iterator[TargetServer]:
    with TargetServer() as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as http:
        yield http


def test_records_requests(target: TargetServer, client: httpx.Client) -> None:
    before = time.time()
    response = client.post(
        f"{target.url}/hook?a=1", content=b'{"x": 1}', headers={"X-Duecall-Id": "abc"}
    )

    assert response.status_code == 200
    assert response.json() == {"ok": True}
    [request] = target.requests_for("/hook")
    assert request.method == "POST"
    assert request.query == "a=1"
    assert request.headers["x-duecall-id"] == "abc"
    assert request.json() == {"x": 1}
    assert before <= request.received_at <= time.time()
    assert target.requests == [request]


def test_status_and_retry_after(target: TargetServer, client: httpx.Client) -> None:
    response = client.get(f"{target.url}/status/418")
    assert response.status_code == 418
    assert response.json() == {"status": 418}

    response = client.get(f"{target.url}/retry-after/7")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"


def test_echo(target: TargetServer, client: httpx.Client) -> None:
    response = client.put(f"{target.url}/echo", content="héllo", headers={"X-A": "b"})
    echo = response.json()
    assert echo["method"] == "PUT"
    assert echo["headers"]["x-a"] == "b"
    assert echo["body"] == "héllo"


def test_slow_requests_are_served_concurrently(target: TargetServer) -> None:
    def call(_: int) -> int:
        with httpx.Client(timeout=5.0) as http:
            return http.get(f"{target.url}/slow/0.5").status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = list(pool.map(call, range(2)))

    assert statuses == [200, 200]
    assert time.monotonic() - started < 0.9


def test_sequence_repeats_last_status(target: TargetServer, client: httpx.Client) -> None:
    target.set_sequence("flaky", [503, 503, 200])
    url = f"{target.url}/sequence/flaky"

    codes = [client.get(url).status_code for _ in range(5)]

    assert codes == [503, 503, 200, 200, 200]
    assert len(target.wait_for(5, path="/sequence/flaky", timeout=1.0)) == 5


def test_wait_for_times_out(target: TargetServer, client: httpx.Client) -> None:
    client.get(f"{target.url}/ok")

    assert len(target.wait_for(1, timeout=1.0)) == 1
    with pytest.raises(TimeoutError):
        target.wait_for(1, path="/never", timeout=0.1)


def test_wait_for_wakes_up_on_arrival(target: TargetServer) -> None:
    def later() -> None:
        time.sleep(0.1)
        httpx.get(f"{target.url}/late", timeout=5.0)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(later)
        [request] = target.wait_for(1, path="/late", timeout=5.0)

    assert request.method == "GET"


def test_closed_port_refuses_connections(client: httpx.Client) -> None:
    with pytest.raises(httpx.ConnectError):
        client.get(closed_port_url())


def test_stop_closes_listener(client: httpx.Client) -> None:
    with TargetServer() as target:
        url = f"{target.url}/ok"
        assert client.get(url).status_code == 200

    with pytest.raises(httpx.TransportError):
        client.get(url)
