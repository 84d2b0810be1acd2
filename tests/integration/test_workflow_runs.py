"""Workflow runs through the real pipeline: each step a call (its key ``wf:<run>:<step>``) to
a real local server, outputs passed on in templates, fail_fast and continue (their dependents
cancelled or skipped, with reasons), cancel of a running run, parallel branches, retry and
re-run, compensation and pause, whole-step timeouts."""

import time
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import LRUCache
from eventsourcing.persistence import IntegrityError

from application import workflows as workflows_module
from application.clock import utcnow
from application.loading import load_current
from application.outbox import WORKFLOW, OutboxMessage
from application.workflows import WorkflowRunNotFoundError
from domain.service_call import ServiceCall, Status
from domain.workflow_run import RunStatus, WorkflowRun
from harness.target_server import TargetServer
from infrastructure.container import Container
from tests.support.waiting import wait_until

TENANT = "t-workflow"


def _run(container: Container, run_id: UUID) -> WorkflowRun:
    return container.workflows.get(TENANT, run_id)


def _finished(container: Container, run_id: UUID, timeout: float = 15) -> WorkflowRun:
    return wait_until(
        lambda: (run := _run(container, run_id)).is_terminal and run, timeout=timeout
    )


def _call(container: Container, run: WorkflowRun, step: str) -> ServiceCall:
    call_id = run.steps[step].call_id
    assert call_id is not None
    return container.service_calls.get_call(TENANT, call_id)


def _get(url: str) -> dict[str, str]:
    return {"method": "GET", "url": url}


def _submit(container: Container, definition: dict[str, Any], **input: Any) -> UUID:
    return container.workflows.submit(TENANT, definition, input or None).run.id


def test_a_three_step_run_passes_outputs_on_and_each_step_is_a_keyed_call(
    container: Container,
) -> None:
    with TargetServer() as target:
        container.start_workers()
        definition = {
            "name": "charge-customer",
            "steps": [
                {
                    "id": "auth",
                    # /echo answers with the request it got: the token comes back in the body
                    "request": {"method": "POST", "url": f"{target.url}/echo",
                                "headers": {"X-Token": "{{ input.key }}"}},
                    "outputs": {"token": "$.body.headers['x-token']"},
                },
                {
                    "id": "charge",
                    "needs": ["auth"],
                    "when": "steps.auth.status == 200",
                    "request": {
                        "method": "POST",
                        "url": f"{target.url}/charge",
                        "headers": {"Authorization": "Bearer {{ steps.auth.outputs.token }}",
                                    "X-Api-Key": "literal-key"},
                        "body": {"amount": "{{ input.amount }}"},
                    },
                },
                {"id": "notify", "needs": ["charge"],
                 "request": {"method": "POST", "url": f"{target.url}/notify"}},
            ],
        }
        run_id = _submit(container, definition, key="abc", amount=42)
        run = _finished(container, run_id)
        assert run.status is RunStatus.SUCCEEDED, run.describe()
        [charge] = target.requests_for("/charge")
        [auth] = target.requests_for("/echo")
        [notify] = target.requests_for("/notify")

    assert charge.headers["authorization"] == "Bearer abc"  # sealed in the call, opened to send
    assert charge.json() == {"amount": 42}
    assert auth.received_at <= charge.received_at <= notify.received_at
    assert run.steps["auth"].outputs["token"].value == "abc"
    assert run.steps_succeeded == 3
    for step, request in (("auth", auth), ("charge", charge), ("notify", notify)):
        call = _call(container, run, step)
        assert call.idempotency_key == f"wf:{run_id}:{step}"
        assert call.origin == f"workflow:{run_id}"
        assert call.name == f"charge-customer/{step}"
        assert call.status is Status.SUCCEEDED
        assert request.headers["idempotency-key"] == f"{call.id}:1"  # the call's, per attempt
    assert charge.headers["x-api-key"] == "literal-key"
    recorded = _call(container, run, "charge").request.headers
    assert recorded["Authorization"].startswith("enc:v1:")  # only ciphertext recorded
    assert recorded["X-Api-Key"].startswith("enc:v1:")
    # the definition's literal secret value is sealed in the run's events too
    stored = run.definition_json["steps"][1]["request"]["headers"]["X-Api-Key"]
    assert stored.startswith("enc:v1:")


def test_a_failing_step_fails_a_fail_fast_run_and_its_dependents_are_skipped(
    container: Container,
) -> None:
    with TargetServer() as target:
        container.start_workers()
        definition = {
            "name": "fails",
            "on_failure": "fail_fast",
            "steps": [
                {"id": "a", "request": {"method": "GET", "url": f"{target.url}/status/500"},
                 "retry_policy": {"max_attempts": 1}},
                {"id": "b", "needs": ["a"], "request": _get(f"{target.url}/ok")},
                {"id": "c", "needs": ["b"], "request": _get(f"{target.url}/ok")},
            ],
        }
        run = _finished(container, _submit(container, definition))
        assert target.requests_for("/ok") == []

    assert run.status is RunStatus.FAILED
    assert run.halted_by == "a"
    assert run.steps["a"].reason == "status 500 is not a success"
    assert run.steps["a"].status_code == 500
    assert _call(container, run, "a").status is Status.FAILED
    for step in ("b", "c"):  # a fail_fast halt: what had not started is cancelled, saying why
        record = run.steps[step]
        assert (record.state.value, record.reason, record.call_id) == (
            "cancelled", "halted_by:a", None,
        )
    assert (run.steps_failed, run.steps_succeeded) == (1, 0)


def test_a_failed_step_that_continues_skips_its_dependents_with_the_reason(
    container: Container,
) -> None:
    with TargetServer() as target:
        container.start_workers()
        definition = {
            "name": "continues",
            "on_failure": "continue",
            "steps": [
                {"id": "a", "request": {"method": "GET", "url": f"{target.url}/status/404"}},
                {"id": "b", "needs": ["a"], "request": {"method": "GET", "url": f"{target.url}/b"}},
                {"id": "c", "needs": ["b"], "request": {"method": "GET", "url": f"{target.url}/c"}},
                {"id": "other", "request": {"method": "GET", "url": f"{target.url}/other"}},
            ],
        }
        run = _finished(container, _submit(container, definition))
        assert target.requests_for("/b") == target.requests_for("/c") == []
        assert len(target.requests_for("/other")) == 1

    assert run.status is RunStatus.FAILED
    assert run.steps["a"].reason == "status 404 is not a success"
    assert (run.steps["b"].state.value, run.steps["b"].reason) == (
        "skipped", "dependency_failed:a",
    )
    assert (run.steps["c"].state.value, run.steps["c"].reason) == (
        "skipped", "dependency_skipped:b",
    )
    assert run.steps["other"].state.value == "succeeded"
    assert (run.steps_failed, run.steps_skipped, run.steps_succeeded) == (1, 2, 1)


def test_cancelling_a_running_run_cancels_its_steps_call(container: Container) -> None:
    with TargetServer() as target:
        container.start_workers()
        definition = {
            "name": "slow",
            "steps": [
                {"id": "wait", "request": {"method": "GET", "url": f"{target.url}/slow/3",
                                           "timeout_seconds": 10}},
                {"id": "after", "needs": ["wait"],
                 "request": {"method": "GET", "url": f"{target.url}/ok"}},
            ],
        }
        run_id = _submit(container, definition)
        target.wait_for(1, path="/slow/3")
        outcome = container.workflows.cancel(TENANT, run_id, "changed my mind")
        assert outcome.run.status is RunStatus.CANCELLED
        [cancelled] = outcome.calls
        time.sleep(3.5)  # the slow request ends: its outcome changes nothing
        run = _run(container, run_id)
        assert target.requests_for("/ok") == []

    assert run.status is RunStatus.CANCELLED
    assert run.cancel_reason == "changed my mind"
    assert {s: r.state.value for s, r in run.steps.items()} == {
        "wait": "cancelled", "after": "cancelled",
    }
    call = _call(container, run, "wait")
    assert call.id == cancelled.id
    assert call.status is Status.CANCELLED


def test_parallel_branches_both_run_and_join(container: Container) -> None:
    with TargetServer() as target:
        container.start_workers()
        definition = {
            "name": "fan-out",
            "steps": [
                {"id": "left", "request": {"method": "GET", "url": f"{target.url}/slow/1"}},
                {"id": "right", "request": {"method": "GET", "url": f"{target.url}/slow/1"}},
                {"id": "join", "needs": ["left", "right"],
                 "request": {"method": "GET", "url": f"{target.url}/join"}},
            ],
        }
        run = _finished(container, _submit(container, definition))
        left, right = target.requests_for("/slow/1")
        [join] = target.requests_for("/join")

    assert run.status is RunStatus.SUCCEEDED
    assert abs(left.received_at - right.received_at) < 0.5  # side by side, not one after
    assert join.received_at >= max(left.received_at, right.received_at) + 1
    assert {_call(container, run, s).idempotency_key for s in ("left", "right", "join")} == {
        f"wf:{run.id}:left", f"wf:{run.id}:right", f"wf:{run.id}:join",
    }


def test_retry_from_failed_and_rerun_make_new_calls_with_new_keys(
    container: Container,
) -> None:
    with TargetServer() as target:
        target.set_sequence("flaky", [500, 200])
        container.start_workers()
        definition = {
            "name": "again",
            "steps": [
                {"id": "first", "request": {"method": "GET", "url": f"{target.url}/ok"}},
                {"id": "flaky", "needs": ["first"], "retry_policy": {"max_attempts": 1},
                 "request": {"method": "GET", "url": f"{target.url}/sequence/flaky"}},
            ],
        }
        run_id = _submit(container, definition)
        assert _finished(container, run_id).status is RunStatus.FAILED
        first_call = _run(container, run_id).steps["first"].call_id
        container.workflows.retry_from_failed(TENANT, run_id)
        run = _finished(container, run_id)
        assert run.status is RunStatus.SUCCEEDED
        assert run.steps["first"].call_id == first_call  # kept, not made again
        assert _call(container, run, "flaky").idempotency_key == f"wf:{run_id}:flaky:r2"

        container.workflows.rerun_step(TENANT, run_id, "first", {"note": "x"}, "tester")
        run = wait_until(
            lambda: (r := _run(container, run_id)).steps["first"].generation == 2
            and r.is_terminal and r
        )
        assert len(target.requests_for("/ok")) == 2

    assert run.status is RunStatus.SUCCEEDED
    assert _call(container, run, "first").idempotency_key == f"wf:{run_id}:first:r2"


def test_a_failure_compensates_the_steps_done_and_pause_holds_new_steps(
    container: Container,
) -> None:
    with TargetServer() as target:
        container.start_workers()
        definition = {
            "name": "saga",
            "steps": [
                {"id": "book", "request": {"method": "POST", "url": f"{target.url}/book"},
                 "compensate": {"method": "POST", "url": f"{target.url}/unbook"}},
                {"id": "pay", "needs": ["book"], "on_failure": "compensate",
                 "retry_policy": {"max_attempts": 1},
                 "request": {"method": "POST", "url": f"{target.url}/status/402"}},
            ],
        }
        run_id = _submit(container, definition)
        container.workflows.pause(TENANT, run_id)
        wait_until(lambda: _run(container, run_id).steps["book"].state.value == "succeeded")
        time.sleep(0.5)
        assert target.requests_for("/status/402") == []  # paused: nothing new ordered
        container.workflows.resume(TENANT, run_id)
        run = _finished(container, run_id)
        [unbook] = target.requests_for("/unbook")

    assert run.status is RunStatus.FAILED
    assert run.compensation == "compensated"
    compensation = run.compensations["book"]
    assert compensation.idempotency_key == f"wf:{run_id}:book:compensate"
    assert compensation.call_id is not None
    call = container.service_calls.get_call(TENANT, compensation.call_id)
    assert call.name == "saga/book/compensate"
    assert unbook.headers["idempotency-key"] == f"{call.id}:1"


def test_a_run_is_found_only_by_its_tenant(container: Container) -> None:
    definition = {"name": "n", "steps": [
        {"id": "a", "request": {"method": "GET", "url": "http://127.0.0.1:9/"}},
    ]}
    run_id = _submit(container, definition)  # no workers: it stays running
    assert container.workflows.get(TENANT, run_id).status is RunStatus.RUNNING
    with pytest.raises(WorkflowRunNotFoundError):
        container.workflows.get("another-tenant", run_id)
    with pytest.raises(WorkflowRunNotFoundError):
        container.workflows.cancel("another-tenant", run_id)
    with pytest.raises(WorkflowRunNotFoundError):
        container.workflows.get(TENANT, uuid4())


def test_an_outcome_handled_twice_changes_nothing_and_a_failed_batch_changes_no_run(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop keeps the runs it loads: a batch it changes but cannot record must leave
    them as recorded, or the outcome handled again would be taken as a duplicate."""
    definition = {"name": "n", "steps": [
        {"id": "a", "request": _get("http://127.0.0.1:9/a"), "outputs": {"x": "$.body.x"}},
        {"id": "b", "needs": ["a"], "request": _get("http://127.0.0.1:9/{{ steps.a.outputs.x }}")},
    ]}
    run_id = _submit(container, definition)  # no workers: the loop is this test
    call_a = _run(container, run_id).steps["a"].call_id
    outcome = {"call_id": str(call_a), "status": "succeeded", "status_code": 200,
               "headers": {}, "body": '{"x": "from-a"}'}
    message = OutboxMessage(WORKFLOW, TENANT, run_id, 0, utcnow(), payload={"outcome": outcome})
    real_record = workflows_module.record

    def conflicting(*args: Any) -> Any:
        raise IntegrityError("version taken")

    monkeypatch.setattr(workflows_module, "record", conflicting)
    with pytest.raises(IntegrityError):
        container.workflows.handle([message])
    monkeypatch.setattr(workflows_module, "record", real_record)
    container.workflows.handle([message])
    run = _run(container, run_id)
    assert (run.steps["a"].state.value, run.steps["b"].state.value) == ("succeeded", "running")
    b = _call(container, run, "b")
    assert (b.idempotency_key, b.request.url) == (f"wf:{run_id}:b", "http://127.0.0.1:9/from-a")
    assert b.status is Status.SCHEDULED

    container.workflows.handle([message])  # a duplicate: nothing recorded
    unknown = OutboxMessage(WORKFLOW, TENANT, uuid4(), 0, utcnow(), payload={"outcome": outcome})
    container.workflows.handle([unknown])  # a run not found: only consumed
    assert _run(container, run_id).version == run.version


def test_a_long_run_is_snapshotted_and_loads_the_same(container: Container) -> None:
    with TargetServer() as target:
        container.start_workers()
        steps = [{"id": "s0", "request": _get(f"{target.url}/ok")}]
        steps += [
            {"id": f"s{i}", "needs": [f"s{i - 1}"], "request": _get(f"{target.url}/ok")}
            for i in range(1, 30)
        ]
        run = _finished(container, _submit(container, {"name": "long", "steps": steps}), 30)
        assert len(target.requests_for("/ok")) == 30

    assert run.status is RunStatus.SUCCEEDED
    assert run.version > 50
    store = container.service_calls.snapshots
    assert store is not None
    assert list(store.get(run.id))  # taken every 50 events, as a schedule's
    found = load_current(container.service_calls, [run.id], LRUCache(maxsize=1))[run.id]
    assert found.describe() == run.describe()


def test_a_step_out_of_time_fails_and_its_call_is_cancelled(container: Container) -> None:
    with TargetServer() as target:
        container.start_workers()
        definition = {
            "name": "late",
            "steps": [
                {"id": "slow", "timeout_seconds": 1,
                 "request": {"method": "GET", "url": f"{target.url}/slow/4",
                             "timeout_seconds": 10}},
                {"id": "quick", "timeout_seconds": 5, "request": _get(f"{target.url}/ok")},
            ],
        }
        started = time.monotonic()
        run = _finished(container, _submit(container, definition))
        took = time.monotonic() - started

    assert run.status is RunStatus.FAILED
    assert 1 <= took < 3.5  # ended by the step's timeout, not by the request's end
    assert run.steps["slow"].reason == "call failed: step_timeout"
    assert _call(container, run, "slow").status is Status.CANCELLED
    assert run.steps["quick"].state.value == "succeeded"  # done in time: its timeout is a no-op
