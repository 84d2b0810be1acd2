"""The WorkflowRun aggregate: steps ordered as calls, outcomes judged, skips, on_failure,
compensation, retry and re-run, cancel and pause, stale messages as no-ops, and replay."""

import json
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any
from uuid import UUID, uuid5

import pytest
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, Mapper, UUIDAsHex
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidRequestError, InvalidTransitionError
from domain.retry_policy import RetryPolicy
from domain.workflow_dag import StepState
from domain.workflow_run import RunStatus, StepOrder, WorkflowRun, WorkflowRunTransitionError
from domain.workflow_run_status import step_idempotency_key

RUN_ID = UUID("0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b")
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
GET = {"method": "GET", "url": "https://x.example/"}
UNDO = {"compensate": {"method": "POST", "url": "https://x.example/undo"}}


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def new_call_id(key: str) -> UUID:
    return uuid5(RUN_ID, key)


def definition(
    needs: dict[str, list[str]], on_failure: str = "fail_fast", **extra: Any
) -> dict[str, Any]:
    """Steps with these needs; ``extra`` maps a step id to more of its fields."""
    steps = [{"id": s, "needs": n, "request": GET, **extra.get(s, {})} for s, n in needs.items()]
    return {"name": "wf", "on_failure": on_failure, "steps": steps}


def submit(values: dict[str, Any], run_input: dict[str, Any] | None = None) -> WorkflowRun:
    return WorkflowRun.submit(
        id=RUN_ID, tenant_id="acme", definition=values, input=run_input, now=NOW
    )


def advance(run: WorkflowRun, seconds: float = 0) -> dict[str, StepOrder]:
    return {order.step_id: order for order in run.advance(at(seconds), new_call_id)}


def done(
    run: WorkflowRun,
    order: StepOrder,
    seconds: float,
    status_code: int | None = 200,
    body: object = None,
    status: str = "succeeded",
    headers: dict[str, str] | None = None,
) -> bool:
    text = None if body is None else body if isinstance(body, str) else json.dumps(body)
    return run.record_step_outcome(
        order.call_id, status, status_code, headers or {}, text, at(seconds)
    )


def failed(run: WorkflowRun, order: StepOrder, seconds: float, status_code: int = 500) -> bool:
    return done(run, order, seconds, status_code, status="failed")


def names(run: WorkflowRun) -> list[str]:
    return [type(e).__name__ for e in run.collect_events()]


def replayed(events: list[Any]) -> WorkflowRun:
    run = reduce(lambda aggregate, e: e.mutate(aggregate), events, None)
    assert isinstance(run, WorkflowRun)
    return run


def state(run: WorkflowRun) -> dict[str, Any]:
    values = dict(vars(run))
    values.pop("definition", None)  # the cached parse
    values.pop("_pending_events")
    return values


def test_a_linear_run_orders_each_step_after_the_one_it_needs() -> None:
    run = submit(definition({"a": [], "b": ["a"], "c": ["b"]}))
    assert run.status is RunStatus.PENDING
    assert names(run) == ["Created"]
    [a] = advance(run).values()
    assert run.status is RunStatus.RUNNING
    assert a.idempotency_key == f"wf:{RUN_ID}:a"
    assert a.call_id == new_call_id(a.idempotency_key)
    assert (a.origin, a.generation, a.compensation) == (f"workflow:{RUN_ID}", 1, False)
    assert a.request.url == "https://x.example/"
    assert advance(run, 0.5) == {}  # nothing moves while a runs
    assert done(run, a, 2)
    [b] = advance(run, 2).values()
    assert b.step_id == "b"
    assert done(run, b, 3)
    [c] = advance(run, 3).values()
    assert done(run, c, 7)
    assert advance(run, 7) == {}
    assert run.status is RunStatus.SUCCEEDED
    assert names(run) == [
        "StepStarted", "StepSucceeded", "StepStarted", "StepSucceeded", "StepStarted",
        "StepSucceeded", "Succeeded",
    ]  # fmt: skip
    assert (run.steps_total, run.steps_succeeded, run.steps_failed, run.steps_skipped) == (
        3, 3, 0, 0,
    )  # fmt: skip
    assert run.duration == timedelta(seconds=7)
    assert run.step_durations == {"a": 2.0, "b": 1.0, "c": 4.0}
    assert run.describe()["counts"]["succeeded"] == 3
    assert run.advance(at(8), new_call_id) == []  # a finished run: nothing


def test_events_carry_duecall_topics() -> None:
    run = submit(definition({"a": []}))
    [a] = advance(run).values()
    done(run, a, 1)
    advance(run, 1)
    topics = [type(e).TOPIC for e in run.collect_events()]
    assert topics == [
        "duecall:WorkflowRun.Created", "duecall:WorkflowRun.StepStarted",
        "duecall:WorkflowRun.StepSucceeded", "duecall:WorkflowRun.Succeeded",
    ]  # fmt: skip


def test_independent_steps_are_ordered_together() -> None:
    run = submit(definition({"a": [], "b": [], "c": ["a", "b"], "d": []}))
    orders = advance(run)
    assert sorted(orders) == ["a", "b", "d"]
    assert len({o.call_id for o in orders.values()}) == 3
    done(run, orders["a"], 1)
    assert advance(run, 1) == {}  # c still needs b
    done(run, orders["b"], 2)
    assert list(advance(run, 2)) == ["c"]


def test_a_false_when_skips_the_step_with_its_reason_and_what_needs_it() -> None:
    values = definition(
        {"a": [], "b": ["a"], "c": ["b"], "d": ["a"]},
        b={"when": 'input.go == "yes"'},
    )
    run = submit(values, {"go": "no"})
    done(run, advance(run)["a"], 1)
    orders = advance(run, 1)
    assert list(orders) == ["d"]
    events = list(run.collect_events())
    skipped = [(e.step, e.reason) for e in events if type(e).__name__ == "StepSkipped"]
    assert skipped == [("b", "when_false"), ("c", "dependency_skipped:b")]
    done(run, orders["d"], 2)
    advance(run, 2)
    assert run.status is RunStatus.SUCCEEDED  # skipped steps do not fail a run
    assert (run.steps_succeeded, run.steps_skipped) == (2, 2)
    assert run.steps["b"].reason == "when_false"
    assert run.step_durations["b"] is None


def test_fail_fast_orders_nothing_more_and_fails_once_running_steps_end() -> None:
    run = submit(definition({"a": [], "b": [], "c": ["a"]}))
    orders = advance(run)
    assert failed(run, orders["b"], 1, 503)
    assert advance(run, 1) == {}
    assert run.steps["c"].state is StepState.CANCELLED
    assert run.steps["c"].reason == "halted_by:b"
    assert run.status is RunStatus.RUNNING  # a still runs
    done(run, orders["a"], 2)
    assert advance(run, 2) == {}
    assert run.status is RunStatus.FAILED
    assert run.halted_by == "b"
    assert run.steps["b"].reason == "status 503 is not a success"
    events = list(run.collect_events())
    assert events[-1].failed_steps == ["b"]
    assert events[-1].compensation is None


def test_continue_skips_what_needs_the_failed_step_and_goes_on() -> None:
    run = submit(definition({"a": [], "b": ["a"], "c": [], "d": ["c"]}, "continue"))
    orders = advance(run)
    failed(run, orders["a"], 1)
    assert advance(run, 1) == {}
    assert run.steps["b"].reason == "dependency_failed:a"
    done(run, orders["c"], 2)
    [d] = advance(run, 2).values()
    done(run, d, 3)
    advance(run, 3)
    assert run.status is RunStatus.FAILED
    assert (run.steps_succeeded, run.steps_failed, run.steps_skipped) == (2, 1, 1)
    assert run.halted_by is None


def test_compensate_undoes_succeeded_steps_one_at_a_time_last_done_first() -> None:
    values = definition(
        {"a": [], "b": [], "c": ["a", "b"], "d": ["a"]},
        "compensate",
        a=UNDO,
        b=UNDO,
    )
    run = submit(values)
    orders = advance(run)
    done(run, orders["b"], 1)
    done(run, orders["a"], 2)  # a finished last: compensated first
    orders = advance(run, 2)
    failed(run, orders["d"], 3)
    assert advance(run, 3) == {}  # c still runs
    done(run, orders["c"], 4)
    run.collect_events()
    [first] = advance(run, 4).values()  # c finished last, but has nothing to undo
    assert run.status is RunStatus.COMPENSATING
    assert (first.step_id, first.compensation) == ("a", True)
    assert first.idempotency_key == f"wf:{RUN_ID}:a:compensate"
    assert first.request.url == "https://x.example/undo"
    assert names(run) == ["CompensationStarted"]
    undone, order = [], first
    while run.status is RunStatus.COMPENSATING:
        undone.append(order.step_id)
        assert advance(run, 5) == {}  # one at a time
        done(run, order, 6)
        orders = advance(run, 6)
        if orders:
            [order] = orders.values()
    assert undone == ["a", "b"]  # a finished after b
    assert run.status is RunStatus.FAILED
    assert run.compensation == "compensated"
    assert run.halted_by == "d"
    assert {s: r.state for s, r in run.compensations.items()} == {
        "a": StepState.SUCCEEDED, "b": StepState.SUCCEEDED,
    }  # fmt: skip


def test_a_failed_compensation_is_recorded_and_the_others_still_run() -> None:
    values = definition({"a": [], "b": ["a"], "c": ["b"]}, "compensate", a=UNDO, b=UNDO)
    run = submit(values)
    done(run, advance(run)["a"], 1)
    done(run, advance(run, 1)["b"], 2)
    failed(run, advance(run, 2)["c"], 3)
    [undo_b] = advance(run, 3).values()
    assert undo_b.step_id == "b"
    assert failed(run, undo_b, 4, 500)
    [undo_a] = advance(run, 4).values()
    assert undo_a.step_id == "a"
    done(run, undo_a, 5)
    advance(run, 5)
    assert run.status is RunStatus.FAILED
    assert run.compensation == "compensation_failed"
    assert run.compensations["b"].reason == "call failed: 500"
    with pytest.raises(WorkflowRunTransitionError, match="compensated"):
        run.retry_from_failed(at(6))


AUTH_CHARGE = {
    "name": "charge-customer",
    "on_failure": "fail_fast",
    "input": {"key": "default-key", "currency": "EUR"},
    "steps": [
        {
            "id": "auth",
            "request": {
                "method": "POST",
                "url": "https://a.example/token",
                "body": {"k": "{{ input.key }}"},
            },
            "outputs": {"token": "$.body.token"},
        },
        {
            "id": "charge",
            "needs": ["auth"],
            "when": "steps.auth.status == 200",
            "request": {
                "method": "POST",
                "url": "https://p.example/charges",
                "headers": {"Authorization": "Bearer {{ steps.auth.outputs.token }}"},
                "body": {"currency": "{{ input.currency }}"},
            },
            "success": "status < 300",
            "retry_policy": {"max_attempts": 5},
            "timeout_seconds": 30,
            "outputs": {"id": "$.body.id"},
            "compensate": {
                "method": "POST",
                "url": "https://p.example/refunds/{{ steps.charge.outputs.id }}",
            },
        },
    ],
}


def test_outputs_flow_into_a_later_steps_request() -> None:
    run = submit(AUTH_CHARGE, {"key": "k-1"})
    [auth] = advance(run).values()
    assert auth.request.body == '{"k":"k-1"}'  # the run's input over the definition's
    assert auth.request.headers["Content-Type"] == "application/json"
    assert done(run, auth, 1, 200, {"token": "tok-9"})
    assert run.steps["auth"].outputs["token"].value == "tok-9"
    [charge] = advance(run, 1).values()
    assert charge.request.headers["Authorization"] == "Bearer tok-9"
    assert charge.request.body == '{"currency":"EUR"}'
    assert charge.retry_policy == RetryPolicy(max_attempts=5)
    assert charge.timeout_seconds == 30
    done(run, charge, 2, 201, {"id": "ch_1"})
    advance(run, 2)
    assert run.status is RunStatus.SUCCEEDED
    assert run.steps["charge"].outputs["id"].value == "ch_1"


def test_a_step_whose_success_says_so_succeeds_on_a_failed_call() -> None:
    values = definition(
        {"a": [], "b": []},
        a={"success": "status == 404", "outputs": {"why": "$.body.error"}},
        b={"success": "status == 201"},
    )
    run = submit(values)
    orders = advance(run)
    failed(run, orders["a"], 1, 404)  # the call failed on its 404; the step asks for one
    done(run, orders["b"], 1, 200)
    assert run.steps["a"].state is StepState.SUCCEEDED
    assert run.steps["a"].outputs["why"].value is None
    assert run.steps["b"].reason == "status 200 is not a success (status == 201)"


def test_a_call_with_no_response_fails_its_step_with_the_error() -> None:
    run = submit(definition({"a": []}))
    [a] = advance(run).values()
    run.record_step_outcome(a.call_id, "failed", None, {}, None, at(1), error_kind="timeout")
    assert run.steps["a"].reason == "call failed: timeout"
    with pytest.raises(InvalidRequestError, match="status"):
        run.record_step_outcome(a.call_id, "running", None, {}, None, at(1))


def test_a_template_reading_a_truncated_output_fails_the_step_not_the_command() -> None:
    run = submit(AUTH_CHARGE)
    [auth] = advance(run).values()
    done(run, auth, 1, 200, {"token": "t" * (300 * 1024)})
    assert run.steps["auth"].outputs["token"].unusable is not None
    assert advance(run, 1) == {}
    reason = run.steps["charge"].reason
    assert reason is not None
    assert reason.startswith("steps[charge].request.headers.Authorization: ")
    assert "truncated" in reason
    assert run.steps["charge"].call_id is None
    assert run.status is RunStatus.FAILED
    assert run.halted_by == "charge"


def test_a_request_body_over_the_limit_fails_the_step() -> None:
    values = definition({"a": []}, a={"request": {**GET, "method": "POST", "body": "x" * 100}})
    run = submit(values)
    assert run.advance(NOW, new_call_id, max_body_bytes=10) == []
    assert str(run.steps["a"].reason).startswith("steps[a].request.body: is 100 bytes")
    assert run.status is RunStatus.FAILED


def test_retry_from_failed_keeps_earlier_outputs_and_moves_the_key_on() -> None:
    run = submit(AUTH_CHARGE | {"steps": [*AUTH_CHARGE["steps"], _receipt()]})
    done(run, advance(run)["auth"], 1, 200, {"token": "tok"})
    [charge] = advance(run, 1).values()
    failed(run, charge, 2, 502)
    advance(run, 2)
    assert run.status is RunStatus.FAILED
    assert run.steps["receipt"].state is StepState.CANCELLED
    with pytest.raises(WorkflowRunTransitionError, match="cannot retry a workflow run"):
        submit(AUTH_CHARGE).retry_from_failed(at(3))

    run.collect_events()
    assert run.retry_from_failed(at(3)) == ("charge", "receipt")
    [retry] = run.collect_events()
    assert (type(retry).__name__, retry.steps, retry.generations) == (
        "RetryRequested", ["charge", "receipt"], [2, 2],
    )  # fmt: skip
    assert run.status is RunStatus.RUNNING
    [again] = advance(run, 3).values()
    assert again.step_id == "charge"
    assert again.idempotency_key == f"wf:{RUN_ID}:charge:r2"
    assert again.call_id != charge.call_id
    assert again.generation == 2
    assert again.request.headers["Authorization"] == "Bearer tok"  # auth's output kept
    assert run.steps["auth"].generation == 1
    run.collect_events()
    assert not failed(run, charge, 4)  # the first generation's late outcome: a no-op
    assert run.collect_events() == []
    done(run, again, 5, 200, {"id": "ch"})
    [receipt] = advance(run, 5).values()
    assert receipt.idempotency_key == step_idempotency_key(RUN_ID, "receipt", 2)
    done(run, receipt, 6)
    advance(run, 6)
    assert run.status is RunStatus.SUCCEEDED
    assert run.duration == timedelta(seconds=6)


def _receipt() -> dict[str, Any]:
    return {"id": "receipt", "needs": ["charge"], "request": GET}


def test_rerun_step_runs_that_step_alone_with_the_edited_input() -> None:
    values = definition(
        {"a": [], "b": ["a"], "c": ["b"]},
        b={"request": {**GET, "url": "https://x.example/{{ input.amount }}"}},
    )
    run = submit(values, {"amount": 5})
    for step, seconds in (("a", 1), ("b", 2), ("c", 3)):
        done(run, advance(run, seconds - 1)[step], seconds)
    advance(run, 3)
    assert run.status is RunStatus.SUCCEEDED
    run.collect_events()

    assert run.rerun_step("b", {"amount": 7}, "alice", at(10)) == 2
    [requested] = run.collect_events()
    assert type(requested).TOPIC == "duecall:WorkflowRun.StepRerunRequested"
    assert (requested.step, requested.input, requested.actor, requested.generation) == (
        "b", {"amount": 7}, "alice", 2,
    )  # fmt: skip
    assert run.status is RunStatus.RUNNING
    with pytest.raises(WorkflowRunTransitionError, match="running"):
        run.rerun_step("a", {}, "alice", at(10))
    [b] = advance(run, 10).values()
    assert (b.step_id, b.idempotency_key) == ("b", f"wf:{RUN_ID}:b:r2")
    assert b.request.url == "https://x.example/7"
    done(run, b, 11)
    assert advance(run, 11) == {}  # c is not run again
    assert run.status is RunStatus.SUCCEEDED
    assert run.steps["c"].generation == 1
    assert run.steps["b"].input_override == {"amount": 7}
    with pytest.raises(InvalidRequestError, match="step_id"):
        run.rerun_step("zz", {}, "alice", at(12))


def test_a_rerun_that_fails_fails_the_run() -> None:
    run = submit(definition({"a": [], "b": []}))
    for order in advance(run).values():
        done(run, order, 1)
    advance(run, 1)
    run.rerun_step("a", {}, "bob", at(2))
    failed(run, advance(run, 2)["a"], 3)
    advance(run, 3)
    assert run.status is RunStatus.FAILED
    assert run.halted_by == "a"


def test_cancel_returns_the_calls_still_running() -> None:
    run = submit(definition({"a": [], "b": [], "c": ["a"]}))
    orders = advance(run)
    done(run, orders["a"], 1)
    [c] = advance(run, 1).values()
    run.collect_events()
    running = run.cancel("not needed", at(2))
    assert sorted(running) == sorted([orders["b"].call_id, c.call_id])
    [cancelled] = run.collect_events()
    assert (cancelled.reason, sorted(cancelled.steps)) == ("not needed", ["b", "c"])
    assert run.status is RunStatus.CANCELLED
    assert run.steps["b"].reason == "run_cancelled"
    assert not done(run, c, 3)  # its call's outcome comes late: a no-op
    assert run.cancel("again", at(4)) == []
    assert run.collect_events() == []
    assert advance(run, 5) == {}
    with pytest.raises(InvalidTransitionError, match="cannot pause a workflow run"):
        run.pause(at(5))
    finished = submit(definition({"a": []}))
    done(finished, advance(finished)["a"], 1)
    advance(finished, 1)
    with pytest.raises(WorkflowRunTransitionError, match="cancel a workflow run that is succeeded"):
        finished.cancel(None, at(2))


def test_a_paused_run_orders_nothing_new_until_resumed() -> None:
    run = submit(definition({"a": [], "b": ["a"]}))
    [a] = advance(run).values()
    assert run.pause(at(1))
    assert not run.pause(at(1))
    assert done(run, a, 2)  # a running step's outcome is still recorded
    assert advance(run, 3) == {}
    assert run.status is RunStatus.PAUSED
    assert run.resume(at(4))
    assert not run.resume(at(4))
    assert run.status is RunStatus.RUNNING
    assert list(advance(run, 4)) == ["b"]


def test_a_pending_run_paused_resumes_pending() -> None:
    run = submit(definition({"a": []}))
    run.pause(NOW)
    assert advance(run) == {}
    run.resume(at(1))
    assert run.status is RunStatus.PENDING
    assert list(advance(run, 1)) == ["a"]


def test_unknown_and_duplicate_outcomes_are_no_ops() -> None:
    run = submit(definition({"a": []}))
    [a] = advance(run).values()
    run.collect_events()
    assert not run.record_step_outcome(new_call_id("zz"), "succeeded", 200, {}, None, at(1))
    assert run.collect_events() == []
    assert done(run, a, 1)
    assert not done(run, a, 2)
    assert names(run) == ["StepSucceeded"]


def test_running_orders_make_the_same_orders_again() -> None:
    run = submit(AUTH_CHARGE)
    done(run, advance(run)["auth"], 1, 200, {"token": "tok"})
    [charge] = advance(run, 1).values()
    assert run.running_orders() == [charge]
    assert replayed(list(run.collect_events())).running_orders() == [charge]


def test_submit_checks_the_definition_and_input() -> None:
    with pytest.raises(InvalidRequestError, match=r"steps\[b\]\.needs"):
        submit(definition({"a": [], "b": ["zz"]}))
    with pytest.raises(InvalidRequestError, match="input"):
        submit(definition({"a": []}), {"bad": "\x00"})
    run = WorkflowRun.submit(
        id=RUN_ID, tenant_id="acme", definition=AUTH_CHARGE, now=NOW, definition_version=3
    )
    assert (run.name, run.definition_version, run.input) == ("charge-customer", 3, {})


def _busy_run() -> WorkflowRun:
    """A run with a retry, a re-run, a skip, outputs and a pause in its history."""
    values = definition(
        {"a": [], "b": ["a"], "c": ["a"], "d": ["b"]},
        "continue",
        a={"outputs": {"id": "$.body.id", "all": "$.body.items[*]"}},
        c={"when": "steps.a.outputs.id == 1"},
    )
    run = submit(values, {"x": 1})
    done(run, advance(run)["a"], 1, 200, {"id": 2, "items": [1, 2]})
    failed(run, advance(run, 1)["b"], 2)
    advance(run, 2)
    run.retry_from_failed(at(3))
    [b] = advance(run, 3).values()
    run.pause(at(4))
    done(run, b, 5)
    run.resume(at(6))
    done(run, advance(run, 6)["d"], 7)
    advance(run, 7)
    run.rerun_step("a", {"x": 2}, "carol", at(8))
    advance(run, 8)
    return run


def test_replaying_the_events_rebuilds_the_same_run() -> None:
    run = _busy_run()
    events = list(run.collect_events())
    again = replayed(events)
    assert state(again) == state(run)
    assert again.describe() == run.describe()
    assert again.status is RunStatus.RUNNING
    assert again.steps["c"].reason == "when_false"


def test_a_snapshot_through_the_event_store_codec_is_the_same_run() -> None:
    run = _busy_run()
    run.collect_events()
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DatetimeAsISO(), DecimalAsStr()):
        transcoder.register(transcoding)
    mapper: Mapper[UUID] = Mapper(transcoder=transcoder)
    stored = mapper.to_stored_event(WorkflowRun.Snapshot.take(run))
    assert stored.topic == "duecall:WorkflowRun.Snapshot"
    restored = mapper.to_domain_event(stored).mutate(None)
    assert isinstance(restored, WorkflowRun)
    assert state(restored) == state(run)
    assert restored.describe() == run.describe()
    assert restored.running_orders() == run.running_orders()


@st.composite
def runs(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    """A random small DAG with random on_failure modes and compensations, and the outcomes
    its calls will get (in the order they finish: an index into the calls running)."""
    count = draw(st.integers(min_value=1, max_value=6))
    names_ = [f"s{n}" for n in range(count)]
    needs = {
        name: sorted(draw(st.sets(st.sampled_from(names_[:n]), max_size=2)) if n else [])
        for n, name in enumerate(names_)
    }
    extra = {
        name: {
            "on_failure": draw(st.sampled_from(["fail_fast", "continue", "compensate"])),
            **(UNDO if draw(st.booleans()) else {}),
            **({"when": "input.go"} if draw(st.integers(0, 5)) == 0 else {}),
        }
        for name in names_
    }
    outcomes = draw(
        st.lists(
            st.tuples(st.sampled_from(["succeeded", "failed", "cancelled"]), st.integers(0, 9)),
            min_size=30,
            max_size=30,
        )
    )
    return definition(needs, **extra), outcomes


@settings(max_examples=150, deadline=None, database=None)
@given(runs(), st.booleans(), st.booleans())
def test_random_outcomes_always_settle_and_order_no_step_twice(
    drawn: tuple[dict[str, Any], list[tuple[str, int]]], go: bool, retry: bool
) -> None:
    values, outcomes = drawn
    run = submit(values, {"go": go})
    keys: set[str] = set()
    running: list[StepOrder] = []
    retried = False
    for n in range(200):
        orders = run.advance(at(n), new_call_id)
        for order in orders:
            assert order.idempotency_key not in keys  # never ordered twice in a generation
            keys.add(order.idempotency_key)
        running.extend(orders)
        if run.status is RunStatus.FAILED and retry and not retried and not run.compensations:
            run.retry_from_failed(at(n))
            retried = True
            continue
        if run.is_terminal:
            break
        assert running, f"a run that is {run.status} with nothing running is stuck"
        status, pick = outcomes[n % len(outcomes)]
        order = running.pop(pick % len(running))
        code = 200 if status == "succeeded" else 500
        assert run.record_step_outcome(order.call_id, status, code, {}, None, at(n))
    assert run.is_terminal
    assert all(record.state is not StepState.RUNNING for record in run.steps.values())
    assert state(replayed(list(run.collect_events()))) == state(run)


def test_a_step_whose_call_was_cancelled_cancels_the_run_at_the_end() -> None:
    run = submit(definition({"a": [], "b": ["a"], "c": []}))
    orders = advance(run)
    assert done(run, orders["a"], 1, None, status="cancelled")
    assert advance(run, 1) == {}
    assert (run.steps["a"].reason, run.steps["b"].reason) == (
        "call_cancelled", "dependency_cancelled:a",
    )  # fmt: skip
    done(run, orders["c"], 2)
    advance(run, 2)
    assert run.status is RunStatus.CANCELLED
    assert run.cancel_reason == "step_cancelled"


def test_values_that_are_not_json_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match="definition: must be a JSON object"):
        submit({"name": "wf", "steps": [{"id": "a", "request": GET, "x": {1, 2}}]})
    with pytest.raises(InvalidRequestError, match="input: must be a JSON object"):
        submit(definition({"a": []}), {"n": float("nan")})
    run = submit(definition({"a": []}))
    done(run, advance(run)["a"], 1)
    advance(run, 1)
    with pytest.raises(InvalidRequestError, match="input: must be an object"):
        run.rerun_step("a", [], "dave", at(2))  # type: ignore[arg-type]
