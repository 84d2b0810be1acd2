"""A run's next moves over its step graph: ready steps, skips, on_failure, compensation."""

import itertools
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.workflow_dag import (
    Moves,
    RunOutcome,
    SkipKind,
    SkipReason,
    StepState,
    blocked_steps,
    compensation_order,
    execution_order,
    next_moves,
    ready_steps,
    response_succeeds,
    steps_to_retry,
    when_skips,
)
from domain.workflow_definition import WorkflowDefinition, parse_definition
from domain.workflow_graph import ancestors, find_cycle, levels, topological_order
from domain.workflow_paths import evaluation_context

S, R, F = StepState.SUCCEEDED, StepState.RUNNING, StepState.FAILED
GET = {"method": "GET", "url": "https://x.example"}


def workflow(
    needs: dict[str, list[str]], on_failure: str = "fail_fast", **extra: Any
) -> WorkflowDefinition:
    """Steps with these needs; ``extra`` maps a step id to more of its fields."""
    steps = [
        {"id": step, "needs": n, "request": GET, **extra.get(step, {})} for step, n in needs.items()
    ]
    return parse_definition({"name": "wf", "on_failure": on_failure, "steps": steps}, 250)


DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []}


def test_steps_needing_nothing_start_together() -> None:
    moves = next_moves(workflow(DIAMOND), {})
    assert moves == Moves(RunOutcome.RUNNING, start=("a", "e"))


def test_a_step_is_ready_once_all_its_needs_succeeded() -> None:
    definition = workflow(DIAMOND)
    assert ready_steps(definition, {"a": S, "e": R}) == ("b", "c")
    assert ready_steps(definition, {"a": S, "b": S, "c": R, "e": S}) == ()
    assert ready_steps(definition, {"a": S, "b": S, "c": S, "e": S}) == ("d",)


def test_a_false_when_skips_the_step_and_what_needs_it() -> None:
    definition = workflow(DIAMOND, b={"when": 'input.go == "yes"'})
    context = evaluation_context(input_values={"go": "no"}, run_id="r", run_name="wf", steps={})
    assert when_skips(definition.step("b"), context) == SkipReason(SkipKind.WHEN_FALSE)
    assert when_skips(definition.step("c"), context) is None
    states = {"a": S, "b": StepState.SKIPPED, "c": S, "e": S}
    moves = next_moves(definition, states)
    assert moves.skip == {"d": SkipReason(SkipKind.DEPENDENCY_SKIPPED, "b")}
    assert moves.outcome is RunOutcome.SUCCEEDED  # skipped steps do not fail a run
    assert str(moves.skip["d"]) == "dependency_skipped:b"


def test_continue_skips_what_needs_the_failed_step_and_goes_on() -> None:
    definition = workflow(DIAMOND, on_failure="continue")
    moves = next_moves(definition, {"a": F, "e": R})
    assert moves.outcome is RunOutcome.RUNNING
    assert moves.skip == {
        "b": SkipReason(SkipKind.DEPENDENCY_FAILED, "a"),
        "c": SkipReason(SkipKind.DEPENDENCY_FAILED, "a"),
        "d": SkipReason(SkipKind.DEPENDENCY_SKIPPED, "b"),  # at once, down the graph
    }
    assert moves.cancel == ()
    assert next_moves(definition, {"a": F, "e": S}).outcome is RunOutcome.FAILED


def test_fail_fast_halts_the_run_and_cancels_what_has_not_started() -> None:
    definition = workflow(DIAMOND)
    running = next_moves(definition, {"a": S, "b": F, "c": R, "e": S})
    assert running == Moves(RunOutcome.RUNNING, cancel=("d",), halted_by="b")
    assert ready_steps(definition, {"a": S, "b": F, "c": S, "e": S}) == ()
    settled = next_moves(definition, {"a": S, "b": F, "c": S, "d": StepState.CANCELLED, "e": S})
    assert settled == Moves(RunOutcome.FAILED, halted_by="b")


def test_a_steps_own_on_failure_overrides_the_runs() -> None:
    definition = workflow(DIAMOND, on_failure="continue", b={"on_failure": "fail_fast"})
    assert next_moves(definition, {"a": S, "b": F, "c": R}).halted_by == "b"
    assert next_moves(definition, {"a": S, "c": F, "b": R}).halted_by is None


def test_compensate_waits_for_running_steps_then_undoes_in_reverse_completion_order() -> None:
    refund = {"compensate": {"method": "POST", "url": "https://x.example/undo"}}
    definition = workflow(DIAMOND, on_failure="compensate", a=refund, c=refund, e=refund)
    states = {"a": S, "b": F, "c": R, "e": S}
    assert next_moves(definition, states, ["e", "a"]).outcome is RunOutcome.RUNNING
    states["c"] = S
    moves = next_moves(definition, states, ["e", "a", "b", "c"])
    assert moves.outcome is RunOutcome.COMPENSATING
    assert moves.compensate == ("c", "a", "e")  # b failed; d never ran
    assert moves.cancel == ("d",)


def test_any_failed_step_asking_for_compensation_gets_it() -> None:
    refund = {"compensate": {"method": "POST", "url": "https://x.example/undo"}}
    definition = workflow(
        {"a": [], "b": [], "c": []},
        a={"on_failure": "fail_fast"},
        b={"on_failure": "compensate"},
        c=refund,
    )
    moves = next_moves(definition, {"a": F, "b": F, "c": S}, ["c", "a", "b"])
    assert moves.halted_by == "a"
    assert moves.outcome is RunOutcome.COMPENSATING
    assert moves.compensate == ("c",)


def test_retrying_a_failed_run_resets_what_the_failure_stopped() -> None:
    definition = workflow({"a": [], "b": ["a"], "c": ["b"], "d": [], "e": [], "f": ["e"]})
    states = {
        "a": F,
        "b": StepState.SKIPPED,
        "c": StepState.SKIPPED,
        "d": StepState.CANCELLED,
        "e": S,
        "f": StepState.SKIPPED,
    }
    skipped = {
        "b": SkipReason(SkipKind.DEPENDENCY_FAILED, "a"),
        "c": SkipReason(SkipKind.DEPENDENCY_SKIPPED, "b"),
        "f": SkipReason(SkipKind.WHEN_FALSE),
    }
    retry = steps_to_retry(definition, states, skipped)
    assert retry == ("a", "b", "c", "d")
    again = {**states, **dict.fromkeys(retry, StepState.PENDING)}
    assert next_moves(definition, again).start == ("a", "d")


def test_compensation_order_keeps_succeeded_steps_with_a_compensate_request() -> None:
    refund = {"compensate": {"method": "POST", "url": "https://x.example/undo"}}
    definition = workflow({"a": [], "b": [], "c": []}, a=refund, b=refund)
    states = {"a": S, "b": S, "c": S}
    assert compensation_order(definition, states, ["b", "c", "a", "b", "zz"]) == ("a", "b")
    assert compensation_order(definition, {"a": F, "b": S}, ["a", "b"]) == ("b",)


def test_a_run_settles_succeeded_failed_or_cancelled() -> None:
    definition = workflow({"a": [], "b": ["a"]})
    assert next_moves(definition, {"a": S, "b": S}).outcome is RunOutcome.SUCCEEDED
    cancelled = {"a": StepState.CANCELLED, "b": StepState.CANCELLED}
    assert next_moves(definition, cancelled).outcome is RunOutcome.CANCELLED
    assert next_moves(definition, {"a": S, "b": R}).outcome is RunOutcome.RUNNING


def test_success_is_2xx_unless_an_expression_says_otherwise() -> None:
    definition = workflow({"a": [], "b": []}, b={"success": "status == 404 or body.ok == true"})
    context = evaluation_context(
        input_values={},
        run_id="r",
        run_name="wf",
        steps={},
        response={"status": 404, "headers": {}, "body": {"ok": False}},
    )
    assert response_succeeds(definition.step("a"), 204, context)
    assert not response_succeeds(definition.step("a"), 404, context)
    assert response_succeeds(definition.step("b"), 404, context)


def test_find_cycle_names_the_steps_along_it() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": [], "a": ["b"], "b": ["a"]}) == ["a", "b", "a"]
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
    assert find_cycle({"a": [], "b": ["a", "zz"]}) is None


def test_order_and_levels_follow_needs_then_declaration() -> None:
    assert topological_order(DIAMOND) == ("a", "b", "c", "d", "e")
    assert levels(DIAMOND) == (("a", "e"), ("b", "c"), ("d",))
    assert ancestors(DIAMOND)["d"] == {"a", "b", "c"}
    assert execution_order(workflow({"z": ["y"], "y": []})) == ("y", "z")
    with pytest.raises(ValueError, match="cycle"):
        topological_order({"a": ["b"], "b": ["a"]})


def test_a_long_chain_does_not_exhaust_recursion() -> None:
    chain = {f"s{n}": [f"s{n - 1}"] if n else [] for n in range(5000)}
    assert find_cycle(chain) is None
    assert topological_order(chain)[-1] == "s4999"
    chain["s0"] = ["s4999"]
    cycle = find_cycle(chain)
    assert cycle is not None
    assert len(cycle) == 5001


@st.composite
def dags(draw: st.DrawFn, max_steps: int = 20) -> dict[str, list[str]]:
    """A random DAG (each step needs only steps earlier in a hidden order), declared in a
    shuffled order."""
    count = draw(st.integers(min_value=1, max_value=max_steps))
    names = [f"s{n}" for n in range(count)]
    needs = {
        name: sorted(draw(st.sets(st.sampled_from(names[:n]), max_size=3)) if n else [])
        for n, name in enumerate(names)
    }
    order = draw(st.permutations(names))
    return {name: needs[name] for name in order}


@settings(max_examples=200, deadline=None, database=None)
@given(dags())
def test_topological_order_and_levels_respect_needs(needs: dict[str, list[str]]) -> None:
    order = topological_order(needs)
    assert sorted(order) == sorted(needs)
    position = {step: n for n, step in enumerate(order)}
    level = {step: n for n, group in enumerate(levels(needs)) for step in group}
    assert find_cycle(needs) is None
    for step, needed in needs.items():
        for other in needed:
            assert position[other] < position[step]
            assert level[other] < level[step]
        assert ancestors(needs)[step] >= set(needed)


@settings(max_examples=200, deadline=None, database=None)
@given(dags(), st.data())
def test_a_planted_cycle_is_found_and_is_a_real_cycle(
    needs: dict[str, list[str]], data: st.DataObject
) -> None:
    order = topological_order(needs)
    last = order[-1]
    path = [last]  # walk from the last step back to the first through needs, if we can
    while needs[path[-1]]:
        path.append(data.draw(st.sampled_from(needs[path[-1]])))
    needs = {**needs, path[-1]: [*needs[path[-1]], last]}  # the step reached needs the last
    cycle = find_cycle(needs)
    assert cycle is not None
    assert cycle[0] == cycle[-1]
    for step, needed in itertools.pairwise(cycle):
        assert needed in needs[step]


@settings(max_examples=200, deadline=None, database=None)
@given(dags(), st.data())
def test_ready_steps_have_every_need_succeeded(
    needs: dict[str, list[str]], data: st.DataObject
) -> None:
    definition = workflow(needs, on_failure=data.draw(st.sampled_from(["fail_fast", "continue"])))
    states = {step: data.draw(st.sampled_from(list(StepState))) for step in needs}
    for step in ready_steps(definition, states):
        assert states[step] is StepState.PENDING
        assert all(states[other] is S for other in needs[step])
    for step, reason in blocked_steps(definition, states).items():
        assert states[step] is StepState.PENDING
        assert reason.step in needs[step]


@settings(max_examples=150, deadline=None, database=None)
@given(
    dags(),
    st.sampled_from(["fail_fast", "continue", "compensate"]),
    st.randoms(use_true_random=False),
)
def test_a_simulated_run_settles_with_every_step_finished_once(
    needs: dict[str, list[str]], on_failure: str, rng: random.Random
) -> None:
    refund = {"compensate": {"method": "POST", "url": "https://x.example/undo"}}
    definition = workflow(needs, on_failure, **dict.fromkeys(needs, refund))
    states: dict[str, StepState] = {}
    finished: list[str] = []
    started: set[str] = set()
    for _ in range(4 * len(needs) + 4):
        moves = next_moves(definition, states, finished)
        for step in moves.start:
            assert step not in started
            assert all(states.get(other) is S for other in needs[step])
            started.add(step)
            states[step] = R
        states.update(dict.fromkeys(moves.skip, StepState.SKIPPED))
        states.update(dict.fromkeys(moves.cancel, StepState.CANCELLED))
        if moves.outcome is not RunOutcome.RUNNING:
            break
        running = [step for step, state in states.items() if state is R]
        if running:  # one running step finishes, by chance
            step = rng.choice(running)
            states[step] = S if rng.random() < 0.8 else F
            finished.append(step)
    else:
        pytest.fail("the run did not settle")
    assert all(states.get(step) not in (None, StepState.PENDING, R) for step in needs)
    failed = any(state is F for state in states.values())
    if moves.outcome is RunOutcome.COMPENSATING:
        assert on_failure == "compensate"
        succeeded = [step for step in finished if states[step] is S]
        assert moves.compensate == tuple(reversed(succeeded))
    else:
        assert moves.outcome is (RunOutcome.FAILED if failed else RunOutcome.SUCCEEDED)
