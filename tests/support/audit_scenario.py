"""The audit scenario: submit; attempt 1 answers 500, attempt 2 times out (the call fails);
a manual retry; attempt 3 answers 200. Driven through the applications, with the times
between the steps kept as ``moments`` for point-in-time questions.
"""

import random
import time
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from application.clock import utcnow
from application.commands import SubmitServiceCall
from application.service_calls import Attempt
from domain.outcome import AttemptResult, ErrorKind
from domain.request import RequestSpec
from domain.retry_policy import Jitter, RetryPolicy
from infrastructure.container import Container
from tests.support.workload import run_until_idle

TENANT = "audit"
BACKOFF_SECONDS = 0.3
POLICY = RetryPolicy(max_attempts=2, initial_backoff_seconds=BACKOFF_SECONDS, jitter=Jitter.NONE)
REQUEST = RequestSpec(
    "POST", "http://target.example/hook", {"Authorization": "Bearer s3cret", "X-Trace": "t-1"},
    '{"order": 7}', 5,
)
ANSWERS = {
    1: AttemptResult(12.5, 500, {"Set-Cookie": "sid=abc", "Content-Type": "text/plain"}, "oops"),
    2: AttemptResult(5000.0, error_kind=ErrorKind.TIMEOUT, message="read timed out"),
    3: AttemptResult(8.0, 200, {"Content-Type": "application/json"}, '{"ok":true}'),
}


@dataclass
class Scenario:
    call_id: UUID
    moments: dict[str, datetime] = field(default_factory=dict)


def _network(attempt: Attempt, _: random.Random) -> AttemptResult:
    return ANSWERS[attempt.message.attempt]


def run_audit_scenario(container: Container, tenant: str = TENANT) -> Scenario:
    before = utcnow()
    call, _ = container.service_calls.submit(SubmitServiceCall(
        tenant_id=tenant, name="orders", request=REQUEST, due_at=utcnow(), retry_policy=POLICY,
    ))
    scenario = Scenario(call.id, {"before": before, "scheduled": utcnow()})
    run_until_idle(container, answer=_network)  # attempt 1: 500, attempt 2 waits for backoff
    scenario.moments["backing_off"] = utcnow()
    time.sleep(BACKOFF_SECONDS + 0.05)
    run_until_idle(container, answer=_network)  # attempt 2: timeout → failed
    scenario.moments["failed"] = utcnow()
    container.service_calls.retry(tenant, call.id, None)
    scenario.moments["retried"] = utcnow()
    run_until_idle(container, answer=_network)  # attempt 3: 200
    scenario.moments["succeeded"] = utcnow()
    return scenario
