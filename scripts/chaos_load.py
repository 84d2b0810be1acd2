"""The chaos run's load (scripts/chaos.py): the planned mix of calls, and the submitter that
offers them to the API at a steady rate, sending a submit again (same keys) until accepted."""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from chaos_stack import ChaosError

from harness.processes import console

SLOW_SECONDS = 3.0  # the slow target's answer; those calls time out after 1 s

# kind → share of the workload
MIX: dict[str, float] = {
    "ok": 0.45,
    "delayed": 0.15,
    "fail_once": 0.12,
    "fail_twice": 0.06,
    "retry_after": 0.06,
    "slow": 0.06,
    "reset": 0.06,
    "fail_always": 0.04,
}
EXPECTED = {kind: "failed" if kind == "fail_always" else "succeeded" for kind in MIX}


# -- the workload -------------------------------------------------------------------------------


@dataclass
class Planned:
    index: int
    token: str
    kind: str
    single: bool
    payload: dict[str, Any]


def plan_workload(args: argparse.Namespace, target_url: str) -> list[Planned]:
    rng = random.Random(args.seed)
    kinds = list(MIX)
    weights = [MIX[k] for k in kinds]
    calls = []
    for index in range(args.calls):
        kind = rng.choices(kinds, weights)[0]
        token = f"c{index:06d}-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
        calls.append(Planned(index, token, kind, rng.random() < args.single_fraction,
                             call_payload(kind, token, target_url, rng)))
    return calls


def call_payload(kind: str, token: str, target_url: str, rng: random.Random) -> dict[str, Any]:
    path = {
        "ok": f"/ok/{token}",
        "delayed": f"/ok/{token}",
        "fail_once": f"/fail/1/{token}",
        "fail_twice": f"/fail/2/{token}",
        "retry_after": f"/retry-after/1/1/{token}",
        "slow": f"/slow/{SLOW_SECONDS:g}/1/{token}",
        "reset": f"/reset/1/{token}",
        "fail_always": f"/fail/1000/{token}",
    }[kind]
    payload: dict[str, Any] = {
        "name": f"chaos-{kind}",
        "request": {"method": "POST", "url": target_url + path, "body": {"token": token},
                    "timeout_seconds": 1 if kind == "slow" else 2},
        "retry_policy": {"max_attempts": 3 if kind == "fail_always" else 6,
                         "initial_backoff_seconds": 0.5, "max_backoff_seconds": 2.0},
        "tags": ["chaos", kind],
    }
    if kind == "delayed":
        payload["delay_seconds"] = round(rng.uniform(2.0, 6.0), 2)
    return payload


@dataclass
class SubmitStats:
    ids: dict[str, str] = field(default_factory=dict)  # token → call id
    requests: int = 0
    retries: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # HTTP status or error name
    not_problem_json: int = 0  # 5xx answers that were not problem+json
    refused: list[str] = field(default_factory=list)  # tokens the API refused for good
    slowest_s: float = 0.0
    started: float = 0.0  # time.time()
    finished: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)


class Submitter:
    """Offers the planned calls at a steady rate, round the API processes; retries a submit
    (at the next API) until it is accepted."""

    TICK = 0.1

    def __init__(self, api_urls: list[str], key: str, calls: list[Planned], rate: float,
                 deadline: float) -> None:
        self._api_urls = api_urls
        self._turn = 0
        self._key = key
        self._calls = calls
        self._rate = rate
        self._deadline = deadline
        self.stats = SubmitStats()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:
            self.error = error
        finally:
            self.stats.finished = time.time()
            self.stats.done.set()

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        headers = {"Authorization": f"Bearer {self._key}"}
        async with httpx.AsyncClient(headers=headers, limits=limits,
                                     timeout=30.0, trust_env=False) as client:
            gate = asyncio.Semaphore(16)
            tasks: list[asyncio.Task[None]] = []
            per_tick = self._rate * self.TICK
            began = time.monotonic()
            self.stats.started = time.time()
            sent = 0
            tick = 0
            while sent < len(self._calls):
                await asyncio.sleep(max(0.0, began + tick * self.TICK - time.monotonic()))
                count = int((tick + 1) * per_tick) - int(tick * per_tick)
                group = self._calls[sent:sent + count]
                sent += len(group)
                tick += 1
                batch = [c for c in group if not c.single]
                if batch:
                    tasks.append(asyncio.create_task(self._batch(client, gate, batch)))
                for call in group:
                    if call.single:
                        tasks.append(asyncio.create_task(self._single(client, gate, call)))
            await asyncio.gather(*tasks)

    async def _batch(self, client: httpx.AsyncClient, gate: asyncio.Semaphore,
                     calls: list[Planned]) -> None:
        body = {"calls": [{**c.payload, "idempotency_key": c.token} for c in calls]}
        answer = await self._until_accepted(client, gate, "/v1/service-calls:batch", body, {})
        if answer is None:
            self.stats.refused.extend(c.token for c in calls)
            return
        for call, item in zip(calls, answer["items"], strict=True):
            self.stats.ids[call.token] = item["id"]

    async def _single(self, client: httpx.AsyncClient, gate: asyncio.Semaphore,
                      call: Planned) -> None:
        answer = await self._until_accepted(client, gate, "/v1/service-calls", call.payload,
                                            {"Idempotency-Key": call.token})
        if answer is None:
            self.stats.refused.append(call.token)
            return
        self.stats.ids[call.token] = answer["id"]

    async def _until_accepted(self, client: httpx.AsyncClient, gate: asyncio.Semaphore,
                              path: str, body: dict[str, Any],
                              headers: dict[str, str]) -> dict[str, Any] | None:
        content = orjson.dumps(body)
        headers = {**headers, "Content-Type": "application/json"}
        while True:
            if time.monotonic() > self._deadline:
                raise ChaosError("submitting did not finish within the run's timeout")
            began = time.monotonic()
            url = self._api_urls[self._turn % len(self._api_urls)] + path
            self._turn += 1  # the next request (and this one's retry) goes to the next API
            try:
                async with gate:
                    response = await client.post(url, content=content, headers=headers)
            except httpx.HTTPError as error:
                self.stats.answers[type(error).__name__] += 1
            else:
                code = response.status_code
                self.stats.answers[str(code)] += 1
                self.stats.slowest_s = max(self.stats.slowest_s, time.monotonic() - began)
                if code in (200, 201):
                    answer: dict[str, Any] = response.json()
                    return answer
                if code >= 500 and not response.headers.get("content-type", "").startswith(
                        "application/problem+json"):
                    self.stats.not_problem_json += 1
                if code not in (429, 500, 502, 503, 504):
                    console.print(f"[red]submit refused: HTTP {code}: {response.text[:300]}[/]")
                    return None
            finally:
                self.stats.requests += 1
            self.stats.retries += 1
            await asyncio.sleep(0.5)


