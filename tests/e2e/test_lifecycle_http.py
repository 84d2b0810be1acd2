"""End to end: the whole call lifecycle over HTTP against a real `duecall serve` process.

Retries with backoff, a non-retryable 4xx, Retry-After, cancel (also of a running attempt),
pause/resume, manual retry (over HTTP and with the CLI), the circuit breaker, idempotent submits
under real concurrency and retry-policy validation, against a real local target that fails on
purpose. Where the API cannot show it yet (why a call was rescheduled), the recorded events are
read from the database.

One server process serves the module, with short timings (polling every 0.1 s, circuits that
open after 3 failures for 1 s). Circuits are per tenant and host, and every target here is on
127.0.0.1, so each test uses a tenant of its own (created through the admin API; its requests
carry an API key of it).
"""

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner, Result

from harness.api_keys import tenant_headers
from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer
from interfaces import cli
from tests.support.problems import assert_problem
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
POLL_INTERVAL = 0.1
CIRCUIT_OPEN_SECONDS = 1.0
SERVER_ENV = {
    "DUECALL_CIRCUIT_FAILURE_THRESHOLD": "3",
    "DUECALL_CIRCUIT_OPEN_SECONDS": str(CIRCUIT_OPEN_SECONDS),
    "DUECALL_CIRCUIT_PROBE_WAIT_SECONDS": "0.3",
}
FAST_RETRIES = {"initial_backoff_seconds": 0.2, "jitter": "none"}


@pytest.fixture(scope="module")
def duecall_server(database_url: str) -> Iterator[DuecallProcess]:
    """This module's server (overrides the e2e conftest's): short poll and circuit timings."""
    with DuecallProcess(
        database_url, poll_interval_seconds=POLL_INTERVAL, extra_env=SERVER_ENV
    ) as server:
        yield server


# -- helpers ---------------------------------------------------------------------------------------


def new_tenant(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def unique_path(prefix: str) -> str:
    return f"/{prefix}/{uuid.uuid4().hex[:12]}"


def headers_for(api: httpx.Client, tenant: str, **extra: str) -> dict[str, str]:
    """The headers of a request as ``tenant`` (its API key) to ``api``'s server, and ``extra``."""
    return {**tenant_headers(str(api.base_url).rstrip("/"), tenant), **extra}


def call_body(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "e2e-lifecycle",
        "request": {"method": "POST", "url": url, "body": {"hello": "world"}},
        **fields,
    }


def submit(api: httpx.Client, tenant: str, url: str, **fields: Any) -> dict[str, Any]:
    response = api.post(
        "/v1/service-calls", json=call_body(url, **fields), headers=headers_for(api, tenant)
    )
    assert response.status_code == 201, response.text
    call: dict[str, Any] = response.json()
    return call


def command(
    api: httpx.Client, tenant: str, call_id: str, action: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    path = f"/v1/service-calls/{call_id}/{action}"
    return api.post(path, json=body, headers=headers_for(api, tenant))


def get_call(api: httpx.Client, tenant: str, call_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/service-calls/{call_id}", headers=headers_for(api, tenant))
    assert response.status_code == 200, response.text
    call: dict[str, Any] = response.json()
    return call


def executions(api: httpx.Client, tenant: str, call_id: str) -> list[dict[str, Any]]:
    path = f"/v1/service-calls/{call_id}/executions"
    response = api.get(path, headers=headers_for(api, tenant))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return sorted(items, key=lambda e: e["attempt"])


def wait_terminal(
    api: httpx.Client, tenant: str, call_id: str, timeout: float = 15.0
) -> dict[str, Any]:
    def terminal() -> dict[str, Any] | None:
        call = get_call(api, tenant, call_id)
        return call if call["status"] in TERMINAL else None

    return wait_until(terminal, timeout=timeout, interval=0.05)


def timestamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def recorded_events(database_url: str, originator_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(topic, state) of an aggregate's recorded events, oldest first (no events API yet)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT topic, state FROM duecall_events WHERE originator_id = %s "
            "ORDER BY originator_version",
            (uuid.UUID(originator_id),),
        ).fetchall()
    return [(str(topic), json.loads(bytes(state))) for topic, state in rows]


def scheduled_events(database_url: str, call_id: str) -> list[dict[str, Any]]:
    return [
        state
        for topic, state in recorded_events(database_url, call_id)
        if topic == "duecall:ServiceCall.Scheduled"
    ]


# -- retries ---------------------------------------------------------------------------------------


def test_a_503_then_200_target_succeeds_on_attempt_2_after_the_backoff(
    api: httpx.Client, target: TargetServer, database_url: str
) -> None:
    tenant = new_tenant("backoff")
    name = f"flaky-{uuid.uuid4().hex[:8]}"
    target.set_sequence(name, [503, 200])
    call = submit(
        api, tenant, f"{target.url}/sequence/{name}",
        retry_policy={"max_attempts": 3, **FAST_RETRIES},
    )  # fmt: skip

    final = wait_terminal(api, tenant, call["id"])

    assert (final["status"], final["attempt"]) == ("succeeded", 2)
    assert (final["last_status_code"], final["last_error_kind"]) == (200, None)
    first, second = executions(api, tenant, call["id"])
    assert (first["attempt"], first["outcome"]) == (1, "failed")
    assert (first["error_kind"], first["status_code"]) == ("http_error", 503)
    assert (second["attempt"], second["outcome"], second["status_code"]) == (2, "succeeded", 200)
    # The backoff was waited: attempt 2 started at least 0.2 s after attempt 1 finished ...
    gap = timestamp(second["started_at"]) - timestamp(first["finished_at"])
    assert gap >= 0.2 - 0.01, gap
    one, two = target.requests_for(f"/sequence/{name}")
    assert two.received_at - one.received_at >= 0.2
    assert (one.headers["idempotency-key"], two.headers["idempotency-key"]) == (
        f"{call['id']}:1",
        f"{call['id']}:2",
    )
    # ... and recorded, with why that delay.
    retry = scheduled_events(database_url, call["id"])[-1]
    assert (retry["attempt"], retry["reason"], retry["delay_seconds"]) == (2, "backoff", 0.2)


def test_a_404_fails_at_once(api: httpx.Client, target: TargetServer) -> None:
    tenant = new_tenant("notfound")
    call = submit(api, tenant, f"{target.url}/status/404", retry_policy=FAST_RETRIES)

    final = wait_terminal(api, tenant, call["id"])

    assert (final["status"], final["attempt"]) == ("failed", 1)
    assert (final["last_status_code"], final["last_error_kind"]) == (404, "http_error")
    [execution] = executions(api, tenant, call["id"])
    assert (execution["outcome"], execution["status_code"]) == ("failed", 404)


def test_retry_after_is_honoured(
    api: httpx.Client, target: TargetServer, database_url: str
) -> None:
    """`/retry-after/2` always answers 503 with `Retry-After: 2`: the second attempt is 2 s on."""
    tenant = new_tenant("retry-after")
    path = "/retry-after/2"
    before = len(target.requests_for(path))
    call = submit(
        api, tenant, f"{target.url}{path}",
        retry_policy={"max_attempts": 2, "initial_backoff_seconds": 30, "jitter": "none"},
    )  # fmt: skip

    final = wait_terminal(api, tenant, call["id"])

    assert (final["status"], final["attempt"], final["last_status_code"]) == ("failed", 2, 503)
    first, second = target.requests_for(path)[before:]
    gap = second.received_at - first.received_at
    retry = scheduled_events(database_url, call["id"])[-1]
    assert (retry["attempt"], retry["reason"], retry["delay_seconds"]) == (2, "retry_after", 2.0)
    due = timestamp(retry["due_at"]["_data_"])
    recorded = timestamp(executions(api, tenant, call["id"])[0]["finished_at"])
    print(
        f"Retry-After: 2 -> gap between deliveries {gap:.3f} s (first delivery -> outcome "
        f"recorded {recorded - first.received_at:.3f} s, -> retry scheduled "
        f"{due - 2.0 - recorded:.3f} s; due -> second delivery {second.received_at - due:.3f} s)"
    )
    assert second.received_at >= due, "the second attempt was made before its due time"
    assert 1.9 <= gap <= 2.1, f"second attempt {gap:.3f} s after the first"


# -- cancel ----------------------------------------------------------------------------------------


def test_cancel_over_http(api: httpx.Client, target: TargetServer) -> None:
    tenant = new_tenant("cancel")
    path = unique_path("cancel")
    call = submit(api, tenant, f"{target.url}{path}", delay_seconds=60)
    soon = submit(api, tenant, f"{target.url}{path}", delay_seconds=0.3)

    cancelled = command(api, tenant, call["id"], "cancel", {"reason": "no longer needed"})
    assert command(api, tenant, soon["id"], "cancel").status_code == 200  # no body: no reason

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    assert get_call(api, tenant, call["id"])["status"] == "cancelled"
    again = assert_problem(command(api, tenant, call["id"], "cancel", {"reason": "twice"}), 409)
    assert "cancelled" in again["detail"]
    time.sleep(0.3 + 0.7)  # well past the second call's due time
    assert target.requests_for(path) == []
    assert get_call(api, tenant, soon["id"])["status"] == "cancelled"
    assert executions(api, tenant, soon["id"]) == []


def test_cancel_of_an_unknown_call_is_404(api: httpx.Client) -> None:
    assert_problem(command(api, "nobody", str(uuid.uuid4()), "cancel"), 404)


def test_cancel_while_running_lets_the_attempt_finish_without_retrying(
    api: httpx.Client, target: TargetServer
) -> None:
    """The running attempt times out (a retryable failure), but a cancelled call never retries."""
    tenant = new_tenant("cancel-running")
    path = "/slow/3"
    before = len(target.requests_for(path))
    response = api.post(
        "/v1/service-calls",
        json={
            "name": "e2e-cancel-running",
            "request": {"method": "POST", "url": f"{target.url}{path}", "timeout_seconds": 2},
            "retry_policy": FAST_RETRIES,
        },
        headers=headers_for(api, tenant),
    )
    assert response.status_code == 201, response.text
    call_id = response.json()["id"]
    target.wait_for(before + 1, path=path, timeout=5)
    # recorded as running once the request has been out a moment (a deferred start)
    wait_until(lambda: get_call(api, tenant, call_id)["status"] == "running", timeout=1.5)

    cancelled = command(api, tenant, call_id, "cancel", {"reason": "changed my mind"})

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"

    def finished() -> list[dict[str, Any]] | None:
        items = executions(api, tenant, call_id)
        return items if items and items[0]["outcome"] != "running" else None

    [execution] = wait_until(finished, timeout=5)
    assert (execution["outcome"], execution["error_kind"]) == ("failed", "timeout")
    time.sleep(0.5)  # longer than the retry backoff
    final = get_call(api, tenant, call_id)
    assert (final["status"], final["attempt"]) == ("cancelled", 1)
    assert len(target.requests_for(path)) == before + 1


# -- pause and resume ------------------------------------------------------------------------------


def test_pause_and_resume_over_http(api: httpx.Client, target: TargetServer) -> None:
    tenant = new_tenant("pause")
    path = unique_path("pause")
    call = submit(api, tenant, f"{target.url}{path}", delay_seconds=1)

    paused = command(api, tenant, call["id"], "pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused"
    time.sleep(1.5)  # past its due time
    assert target.requests_for(path) == []
    assert get_call(api, tenant, call["id"])["status"] == "paused"

    resumed_at = time.time()
    resumed = command(api, tenant, call["id"], "resume")
    answered_at = time.time()

    assert resumed.status_code == 200, resumed.text
    state = resumed.json()
    assert (state["status"], state["attempt"]) == ("scheduled", 1)
    due = timestamp(state["due_at"])
    assert resumed_at - 0.1 <= due <= answered_at + 0.1, "its due time had passed: due now"
    [request] = target.wait_for(1, path=path, timeout=5)
    assert request.received_at - resumed_at <= 1.0
    assert wait_terminal(api, tenant, call["id"])["status"] == "succeeded"
    refused = assert_problem(command(api, tenant, call["id"], "pause"), 409)
    assert "succeeded" in refused["detail"]
    assert len(target.requests_for(path)) == 1


# -- manual retry ----------------------------------------------------------------------------------


def test_manual_retry_over_http(api: httpx.Client, target: TargetServer) -> None:
    tenant = new_tenant("manual")
    call = submit(api, tenant, f"{target.url}/status/404")
    assert wait_terminal(api, tenant, call["id"])["status"] == "failed"
    keys_before = [r.headers["idempotency-key"] for r in target.requests_for("/status/404")]

    retried = command(api, tenant, call["id"], "retry")

    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["attempt"]) == ("scheduled", 2)
    assert retried.json()["finished_at"] is None
    final = wait_terminal(api, tenant, call["id"])
    assert (final["status"], final["attempt"], final["last_status_code"]) == ("failed", 2, 404)
    first, second = executions(api, tenant, call["id"])
    assert [first["attempt"], second["attempt"]] == [1, 2]
    assert first["outcome"] == second["outcome"] == "failed"
    keys = [r.headers["idempotency-key"] for r in target.requests_for("/status/404")]
    assert f"{call['id']}:1" in keys_before
    assert keys.count(f"{call['id']}:1") == 1
    assert keys.count(f"{call['id']}:2") == 1

    scheduled = submit(api, tenant, f"{target.url}/ok", delay_seconds=60)
    refused = assert_problem(command(api, tenant, scheduled["id"], "retry"), 409)
    assert "scheduled" in refused["detail"]
    succeeded = submit(api, tenant, f"{target.url}/ok")
    assert wait_terminal(api, tenant, succeeded["id"])["status"] == "succeeded"
    refused = assert_problem(command(api, tenant, succeeded["id"], "retry"), 409)
    assert "succeeded" in refused["detail"]
    assert command(api, tenant, scheduled["id"], "cancel").status_code == 200


# -- the same commands in the CLI ----------------------------------------------------------------


def run_cli(server: DuecallProcess, api_key: str, *args: str) -> Result:
    """`duecall <args> --api <server> --api-key <key>`, in process, against the real server."""
    options = ["--api", server.url, "--api-key", api_key]
    return CliRunner().invoke(cli.app, [*args, *options], env={"COLUMNS": "200"})


def cli_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    state: dict[str, Any] = json.loads(result.output)
    return state


def test_cli_cancel_pause_resume_and_retry(
    duecall_server: DuecallProcess, api: httpx.Client, target: TargetServer
) -> None:
    tenant = new_tenant("cli")
    call = submit(api, tenant, f"{target.url}{unique_path('cli')}", delay_seconds=60)
    call_id = call["id"]
    key = duecall_server.tenant_key(tenant)  # another key of the same tenant

    paused = cli_json(run_cli(duecall_server, key, "pause", call_id, "--json"))
    assert paused["status"] == "paused"
    resumed = cli_json(run_cli(duecall_server, key, "resume", call_id, "--json"))
    assert (resumed["status"], resumed["due_at"]) == ("scheduled", call["due_at"])
    shown = run_cli(duecall_server, key, "cancel", call_id, "--reason", "via the CLI")
    assert shown.exit_code == 0, shown.output
    assert "cancelled" in shown.output
    refused = run_cli(duecall_server, key, "cancel", call_id)
    assert refused.exit_code == 1
    assert "cannot cancel a call that is cancelled" in refused.output

    failed = submit(api, tenant, f"{target.url}/status/404")
    assert wait_terminal(api, tenant, failed["id"])["status"] == "failed"
    retried = cli_json(run_cli(duecall_server, key, "retry", failed["id"], "--json"))
    assert (retried["status"], retried["attempt"]) == ("scheduled", 2)
    assert wait_terminal(api, tenant, failed["id"])["attempt"] == 2


# -- circuit breaker -------------------------------------------------------------------------------


def circuits(api: httpx.Client, tenant: str) -> dict[str, dict[str, Any]]:
    response = api.get("/v1/circuits", headers=headers_for(api, tenant))
    assert response.status_code == 200, response.text
    return {c["host"]: c for c in response.json()["items"]}


def test_a_failing_host_opens_its_circuit_and_held_calls_complete_once_it_recovers(
    api: httpx.Client, target: TargetServer, database_url: str
) -> None:
    tenant = "circuit-e2e"
    name = f"unwell-{uuid.uuid4().hex[:8]}"
    target.set_sequence(name, [503] * 5 + [200])  # the last code repeats
    policy = {"max_attempts": 10, **FAST_RETRIES}
    calls = [
        submit(api, tenant, f"{target.url}/sequence/{name}", retry_policy=policy) for _ in range(3)
    ]

    def seen_open() -> dict[str, Any] | None:
        circuit = circuits(api, tenant).get("127.0.0.1")
        return circuit if circuit and circuit["state"] == "open" else None

    opened = wait_until(seen_open, timeout=10, interval=0.02)
    finals = [wait_terminal(api, tenant, call["id"], timeout=20) for call in calls]

    assert opened["consecutive_failures"] >= 3
    assert opened["open_until"] is not None
    assert [final["status"] for final in finals] == ["succeeded"] * 3
    # Nothing dropped, nothing extra: five 503s, then one 200 per call; held attempts were
    # not spent (every attempt number a call used is one request the target got).
    received = target.requests_for(f"/sequence/{name}")
    assert len(received) == 5 + 3
    assert sum(final["attempt"] for final in finals) == len(received)
    keys = sorted(r.headers["idempotency-key"] for r in received)
    assert keys == sorted(f"{f['id']}:{n}" for f in finals for n in range(1, f["attempt"] + 1))
    # Why calls waited is in their history: held attempts were rescheduled, attempt unchanged.
    holds = []
    for final in finals:
        schedules = scheduled_events(database_url, final["id"])
        holds += [
            (state, previous)
            for previous, state in itertools.pairwise(schedules)
            if state["reason"] == "circuit_open"
        ]
    assert holds, "no call was held by the open circuit"
    assert all(state["attempt"] == previous["attempt"] for state, previous in holds)
    # The probe's success closed it; the circuit is the tenant's alone.
    assert circuits(api, tenant)["127.0.0.1"]["state"] == "closed"
    assert "127.0.0.1" not in circuits(api, new_tenant("other"))

    reset = api.post("/v1/circuits/127.0.0.1/reset", headers=headers_for(api, tenant))
    assert reset.status_code == 200, reset.text
    assert (reset.json()["host"], reset.json()["state"]) == ("127.0.0.1", "closed")
    assert reset.json()["consecutive_failures"] == 0
    unknown = api.post("/v1/circuits/unknown.example/reset", headers=headers_for(api, tenant))
    assert_problem(unknown, 404)


def test_reset_closes_an_open_circuit(api: httpx.Client, target: TargetServer) -> None:
    tenant = new_tenant("reset")
    policy = {"max_attempts": 1}
    calls = [submit(api, tenant, f"{target.url}/status/500", retry_policy=policy) for _ in range(3)]
    for call in calls:
        assert wait_terminal(api, tenant, call["id"])["status"] == "failed"
    assert circuits(api, tenant)["127.0.0.1"]["state"] == "open"

    reset = api.post("/v1/circuits/127.0.0.1/reset", headers=headers_for(api, tenant))

    assert reset.status_code == 200, reset.text
    assert reset.json()["state"] == "closed"
    assert circuits(api, tenant)["127.0.0.1"]["state"] == "closed"
    # Closed at once: a new call is made now, not held until the open period ends.
    path = unique_path("after-reset")
    submitted_at = time.time()
    submit(api, tenant, f"{target.url}{path}")
    [request] = target.wait_for(1, path=path, timeout=5)
    assert request.received_at - submitted_at < CIRCUIT_OPEN_SECONDS


# -- idempotency -----------------------------------------------------------------------------------


def test_concurrent_identical_submits_with_one_idempotency_key_create_one_call(
    duecall_server: DuecallProcess, api: httpx.Client, target: TargetServer
) -> None:
    tenant = new_tenant("idempotent")
    key = f"key-{uuid.uuid4()}"
    path = unique_path("idempotent")
    body = call_body(f"{target.url}{path}")
    submitters = 50
    barrier = threading.Barrier(submitters)
    responses: list[httpx.Response | BaseException] = []
    lock = threading.Lock()
    limits = httpx.Limits(max_connections=submitters, max_keepalive_connections=submitters)
    client = httpx.Client(base_url=duecall_server.url, timeout=30, limits=limits)
    headers = headers_for(api, tenant, **{"Idempotency-Key": key})

    def submit_once() -> None:
        try:
            barrier.wait(timeout=10)
            response: httpx.Response | BaseException = client.post(
                "/v1/service-calls", json=body, headers=headers
            )
        except BaseException as error:
            response = error
        with lock:
            responses.append(response)

    with client:
        threads = [threading.Thread(target=submit_once) for _ in range(submitters)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    answered = [r for r in responses if isinstance(r, httpx.Response)]
    assert len(answered) == submitters, [r for r in responses if r not in answered]
    statuses = sorted(r.status_code for r in answered)
    assert statuses == [200] * (submitters - 1) + [201], [r.text for r in answered][:3]
    ids = {r.json()["id"] for r in answered}
    assert len(ids) == 1
    (call_id,) = ids
    assert {r.headers["location"] for r in answered} == {f"/v1/service-calls/{call_id}"}
    assert wait_terminal(api, tenant, call_id)["status"] == "succeeded"
    time.sleep(0.5)  # a second call, had there been one, would have been made by now
    [request] = target.requests_for(path)
    assert request.headers["idempotency-key"] == f"{call_id}:1"

    other_body = call_body(f"{target.url}{path}", name="another body")
    reused = api.post(
        "/v1/service-calls",
        json=other_body,
        headers=headers_for(api, tenant, **{"Idempotency-Key": key}),
    )
    problem = assert_problem(reused, 409)
    assert problem["service_call_id"] == call_id
    # The key is the tenant's: another tenant using it gets a call of its own.
    elsewhere = api.post(
        "/v1/service-calls",
        json=body,
        headers=headers_for(api, new_tenant("idempotent"), **{"Idempotency-Key": key}),
    )
    assert elsewhere.status_code == 201, elsewhere.text
    assert elsewhere.json()["id"] != call_id


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        pytest.param({"max_attempts": 0}, "retry_policy.max_attempts", id="zero-attempts"),
        pytest.param({"max_attempts": 51}, "retry_policy.max_attempts", id="51-attempts"),
        pytest.param(
            {"initial_backoff_seconds": 10, "max_backoff_seconds": 5},
            "retry_policy.max_backoff_seconds",
            id="max-below-initial",
        ),
        pytest.param({"retry_on": ["5xx", "sometimes"]}, "retry_policy.retry_on.1", id="retry-on"),
        pytest.param({"jitter": "half"}, "retry_policy.jitter", id="jitter"),
    ],
)
def test_an_invalid_retry_policy_is_422_naming_the_field(
    api: httpx.Client, target: TargetServer, policy: dict[str, Any], field: str
) -> None:
    tenant = new_tenant("invalid")

    response = api.post(
        "/v1/service-calls",
        json=call_body(f"{target.url}/ok", retry_policy=policy),
        headers=headers_for(api, tenant),
    )

    problem = assert_problem(response, 422)
    assert field in [error["field"] for error in problem["errors"]], problem
    assert field in problem["detail"]
    assert "location" not in response.headers
