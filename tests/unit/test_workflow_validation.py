"""The dry run of a definition (domain/workflow_validation.py): the levels of a valid one;
every step's first problem named by step and field (needs, cycles, templates, JSONPath,
expressions); with an input, the first steps' ``when`` and requests rendered with it."""

from typing import Any

from domain.workflow_validation import dry_run

URL = "https://e.example/x"


def step(step_id: str, *needs: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "needs": list(needs),
            "request": {"method": "GET", "url": fields.pop("url", URL)}, **fields}


def test_a_valid_definition_has_its_levels_and_no_problem() -> None:
    checked = dry_run({"name": "d", "steps": [
        step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c"), step("e"),
        step("f", "e", "a"),
    ]})
    assert checked.valid
    assert checked.definition is not None
    assert checked.definition.levels == (("a", "e"), ("b", "c", "f"), ("d",))


def test_every_steps_first_problem_is_named_in_order() -> None:
    checked = dry_run({"name": "d", "steps": [
        step("a"),
        step("b", "a", url="https://e.example/{{ steps.zz.outputs.x }}"),
        step("c", "a", outputs={"v": "$.body[?"}),
        step("d", "a", when="steps.a.status ==="),
        step("e", "a", success="nonsense(1)"),
    ]})
    assert checked.definition is None
    assert [p.field for p in checked.problems] == [
        "steps[b].request.url", "steps[c].outputs.v", "steps[d].when", "steps[e].success",
    ]


def test_the_graphs_problem_comes_alone() -> None:
    cycle = dry_run({"name": "d", "steps": [step("a", "b"), step("b", "a")]})
    assert [p.field for p in cycle.problems] == ["steps[a].needs"]
    assert "a -> b -> a" in cycle.problems[0].message
    unknown = dry_run({"name": "d", "steps": [step("a", "nope")]})
    assert [p.field for p in unknown.problems] == ["steps[a].needs"]


def test_with_an_input_the_first_steps_are_rendered_with_it() -> None:
    definition = {"name": "d", "input": {"region": "eu"}, "steps": [
        step("a", url="https://e.example/{{ input.region }}/{{ input.id }}"),
        step("b", when="input.go == true", url="https://e.example/{{ input.missing }}"),
        step("c", "a", url="https://e.example/{{ input.other }}"),  # later: not rendered
    ]}
    assert dry_run(definition).valid  # without an input: the definition alone
    missing = dry_run(definition, {})
    assert [p.field for p in missing.problems] == ["steps[a].request.url"]
    assert "input.id" in missing.problems[0].message
    assert dry_run(definition, {"id": "7"}).valid  # b's when is false: b is not rendered
    both = dry_run(definition, {"id": "7", "go": True})
    assert [p.field for p in both.problems] == ["steps[b].request.url"]


def test_an_input_problem_is_the_inputs() -> None:
    checked = dry_run({"name": "d", "steps": [step("a")]}, {"x": "\x00"})
    assert not checked.valid
    assert checked.problems == ()
    assert checked.input_problems[0].field.startswith("input")
    assert dry_run({"name": "d", "steps": [step("a")]}, [1]).input_problems[0].field == "input"
