"""A scripted workload driven straight through the applications (no HTTP, no worker threads).

Calls go to ``http://<host>/<behaviour>``; the fake "network" answers by behaviour:

    ok        200 at once
    flaky     500 on attempt 1, then 200           (a retry)
    timeout   timeout on every attempt             (retries, then Failed: attempts exhausted)
    missing   404                                  (not retryable: Failed at once)

Durations are drawn from a seeded generator, so a workload is reproducible.
"""

import random
from collections.abc import Callable, Sequence
from datetime import timedelta
from uuid import UUID

from application.clock import utcnow
from application.commands import SubmitServiceCall
from application.outbox import EXECUTE, START
from application.service_calls import Attempt
from domain.outcome import AttemptResult, ErrorKind
from domain.request import RequestSpec
from domain.retry_policy import Jitter, RetryPolicy
from harness.network import LOOPBACK_ALLOWLIST
from infrastructure.container import Container
from infrastructure.settings import Settings

BEHAVIOURS = ("ok", "flaky", "timeout", "missing")
FAST_RETRIES = RetryPolicy(max_attempts=3, initial_backoff_seconds=0, jitter=Jitter.NONE)


def workload_settings(database_url: str) -> Settings:
    """Settings for driving workloads: no circuit ever opens, quick polling."""
    return Settings(
        database_url=database_url,
        poll_interval_seconds=0.2,
        circuit_failure_threshold=1_000_000,
        log_format="console",
        outbound_allowlist=LOOPBACK_ALLOWLIST,
    )


def submit_calls(
    container: Container,
    count: int,
    *,
    tenant: str = "t1",
    names: Sequence[str] = ("alpha", "beta", "gamma"),
    hosts: Sequence[str] = ("a.example", "b.example"),
    behaviours: Sequence[str] = BEHAVIOURS,
    delay_seconds: float = 0.0,
) -> list[UUID]:
    ids = []
    for i in range(count):
        url = f"http://{hosts[i % len(hosts)]}/{behaviours[i % len(behaviours)]}"
        command = SubmitServiceCall(
            tenant_id=tenant,
            name=names[i % len(names)],
            request=RequestSpec("POST", url, timeout_seconds=5),
            due_at=utcnow() + timedelta(seconds=delay_seconds),
            tags=[f"batch-{i % 2}", "workload"],
            correlation_id=f"corr-{i}",
            retry_policy=FAST_RETRIES,
        )
        call, _ = container.service_calls.submit(command)
        ids.append(call.id)
    return ids


Answer = Callable[[Attempt, random.Random], AttemptResult]


def run_until_idle(
    container: Container, seed: int = 0, batch: int = 500, answer: "Answer | None" = None
) -> None:
    """Start, execute and record outcomes until there is nothing left that is due;
    ``answer`` plays the network (default: by the URL's behaviour, above)."""
    rng = random.Random(seed)
    while _step(container, rng, batch, answer or _answer):
        pass


def _step(container: Container, rng: random.Random, batch: int, answer: Answer) -> int:
    outbox = container.outbox
    starts = outbox.claim(START, batch)
    if starts:
        container.service_calls.start_due(starts)
    executes = outbox.claim(EXECUTE, batch)
    if executes:
        attempts = container.service_calls.begin_attempts(executes)
        container.service_calls.finish_attempts([(a, answer(a, rng)) for a in attempts])
    return len(starts) + len(executes)


def _answer(attempt: Attempt, rng: random.Random) -> AttemptResult:
    behaviour = attempt.request.url.rsplit("/", 1)[-1]
    duration = rng.lognormvariate(3.5, 1.0)  # ms: median ~33, long tail
    if behaviour == "timeout":
        return AttemptResult(duration_ms=5000.0, error_kind=ErrorKind.TIMEOUT, message="timeout")
    if behaviour == "missing":
        return AttemptResult(duration_ms=duration, status_code=404)
    if behaviour == "flaky" and attempt.message.attempt == 1:
        return AttemptResult(duration_ms=duration, status_code=500)
    return AttemptResult(duration_ms=duration, status_code=200)
