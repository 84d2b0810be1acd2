"""Workflow definitions: checked into dataclasses, every error naming step and field."""

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidRequestError
from domain.retry_policy import RetryPolicy
from domain.workflow_definition import (
    HARD_MAX_STEPS,
    WorkflowDefinition,
    definition_problems,
    parse_definition,
)
from domain.workflow_expressions import evaluate
from domain.workflow_paths import evaluation_context
from domain.workflow_step import OnFailure
from domain.workflow_step_request import render_request

EXAMPLE: dict[str, Any] = {
    "name": "charge-customer",
    "on_failure": "fail_fast",
    "input": {"key": "k-1"},
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


def changed(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    values = copy.deepcopy(EXAMPLE)
    change(values)
    return values


def refused(values: object, **kwargs: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as raised:
        parse_definition(values, **kwargs)
    return raised.value


def step(n: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"s{n}", "request": {"method": "GET", "url": "https://x.example"}, **fields}


def test_the_issue_example_parses() -> None:
    definition = parse_definition(EXAMPLE)
    assert isinstance(definition, WorkflowDefinition)
    assert definition.name == "charge-customer"
    assert definition.on_failure is OnFailure.FAIL_FAST
    assert dict(definition.input) == {"key": "k-1"}
    assert dict(definition.needs) == {"auth": (), "charge": ("auth",)}
    charge = definition.step("charge")
    assert charge.on_failure is OnFailure.FAIL_FAST  # the run's default
    assert charge.retry_policy == RetryPolicy(max_attempts=5)
    assert charge.timeout_seconds == 30.0
    assert list(charge.outputs) == ["id"]
    assert charge.compensate is not None
    assert charge.compensate.retry_policy is None


def test_requests_render_per_run_and_are_checked_as_a_calls() -> None:
    definition = parse_definition(EXAMPLE)
    context = evaluation_context(
        input_values=definition.input,
        run_id="run-1",
        run_name=definition.name,
        steps={
            "auth": {"state": "succeeded", "status": 200, "outputs": {"token": "tok"}},
            "charge": {"state": "succeeded", "status": 201, "outputs": {"id": "ch_1"}},
        },
    )
    auth = render_request(definition.step("auth").request, context, "steps[auth].request")
    assert (auth.method, auth.url, auth.body) == ("POST", "https://a.example/token", '{"k":"k-1"}')
    assert auth.headers == {"Content-Type": "application/json"}
    charge = definition.step("charge")
    sent = render_request(charge.request, context, "steps[charge].request")
    assert sent.headers == {"Authorization": "Bearer tok"}
    assert sent.body is None
    assert charge.compensate is not None
    refund = render_request(charge.compensate.request, context, "steps[charge].compensate")
    assert refund.url == "https://p.example/refunds/ch_1"
    assert charge.when is not None
    assert evaluate(charge.when, context)


def test_a_rendered_request_that_breaks_a_calls_rule_names_the_step() -> None:
    values = changed(
        lambda d: d["steps"][0]["request"].update(
            url="{{ input.base }}/token", headers={"X-Key": "{{ input.key }}"}
        )
    )
    definition = parse_definition(values)
    request = definition.step("auth").request
    for base, field in (("ftp://a.example", "url"), ("https://a.example", "headers")):
        context = evaluation_context(
            input_values={"base": base, "key": "line\nbreak"}, run_id="r", run_name="n", steps={}
        )
        with pytest.raises(InvalidRequestError) as raised:
            render_request(request, context, "steps[auth].request")
        assert raised.value.field == f"steps[auth].request.{field}"


def test_a_text_body_of_one_look_up_writes_the_value_as_text() -> None:
    values = changed(lambda d: d["steps"][0]["request"].update(body="{{ input.key }}"))
    definition = parse_definition(values)
    for value, text in ((True, "true"), ({"a": [1]}, '{"a":[1]}'), (None, "")):
        context = evaluation_context(
            input_values={"key": value}, run_id="r", run_name="n", steps={}
        )
        sent = render_request(definition.step("auth").request, context, "steps[auth].request")
        assert sent.body == text


def test_a_text_body_stays_text_and_a_content_type_given_is_kept() -> None:
    values = changed(
        lambda d: d["steps"][0]["request"].update(
            body="key={{ input.key | urlencode }}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    )
    definition = parse_definition(values)
    context = evaluation_context(input_values={"key": "a b"}, run_id="r", run_name="n", steps={})
    sent = render_request(definition.step("auth").request, context, "steps[auth].request")
    assert sent.body == "key=a%20b"
    assert sent.headers == {"content-type": "application/x-www-form-urlencoded"}


def test_per_step_on_failure_overrides_the_runs() -> None:
    values = changed(lambda d: d["steps"][0].update(on_failure="continue"))
    values["on_failure"] = "compensate"
    definition = parse_definition(values)
    assert definition.step("auth").on_failure is OnFailure.CONTINUE
    assert definition.step("charge").on_failure is OnFailure.COMPENSATE


def test_the_long_form_of_compensate_takes_a_retry_policy() -> None:
    compensate = {
        "request": {"method": "DELETE", "url": "https://p.example/c/{{ steps.charge.outputs.id }}"},
        "retry_policy": {"max_attempts": 9},
    }
    definition = parse_definition(changed(lambda d: d["steps"][1].update(compensate=compensate)))
    compensation = definition.step("charge").compensate
    assert compensation is not None
    assert compensation.request.method == "DELETE"
    assert compensation.retry_policy == RetryPolicy(max_attempts=9)


AUTH, REQ, CHARGE = ("steps", 0), ("steps", 0, "request"), ("steps", 1)
DROP = object()  # removes the key
GET = {"method": "GET", "url": "https://x.example"}
CHARGE_URL = "https://a.example/{{ steps.charge.outputs.id }}"
NO_OUTPUT_URL = "https://p.example/{{ steps.charge.outputs.nope }}"
LONG_FORM = {"request": {"method": "GET", "url": "https://x.example"}, "x": 1}
BAD_DEFINITIONS: list[tuple[tuple[Any, ...], str, object, str, str]] = [
    (AUTH, "needs", ["charge"], "steps[auth].needs", "auth -> charge -> auth"),
    (AUTH, "needs", ["auth"], "steps[auth].needs", "cannot need itself"),
    (CHARGE, "needs", ["nope"], "steps[charge].needs", "unknown step 'nope'"),
    (CHARGE, "needs", ["auth", "auth"], "steps[charge].needs", "more than once"),
    (CHARGE, "needs", "auth", "steps[charge].needs", "a list"),
    (CHARGE, "id", "auth", "steps[1].id", "duplicate step id 'auth'"),
    (AUTH, "id", "Auth", "steps[0].id", "lower-case"),
    (AUTH, "id", "a" * 64, "steps[0].id", "1 to 63"),
    (AUTH, "id", DROP, "steps[0].id", "is required"),
    (AUTH, "request", DROP, "steps[auth].request", "is required"),
    (AUTH, "extra", 1, "steps[auth].extra", "unknown field"),
    ((), "extra", 1, "extra", "unknown field"),
    ((), "name", "", "name", "is required"),
    ((), "name", "x" * 129, "name", "1 to 128"),
    ((), "name", "a b", "name", "letters"),
    ((), "on_failure", "explode", "on_failure", "must be one of"),
    ((), "input", [1], "input", "must be an object"),
    ((), "input", {"k": [{"b": float("nan")}]}, "input.k[0].b", "JSON"),
    ((), "steps", [], "steps", "non-empty list"),
    (REQ, "url", CHARGE_URL, "steps[auth].request.url", "'charge' is not a step this one needs"),
    (REQ, "url", "ftp://a.example/", "steps[auth].request.url", "http(s)"),
    (REQ, "url", "https://u:p@a.example/", "steps[auth].request.url", "credentials"),
    (REQ, "url", "https://a.example/ {{ run.id }}", "steps[auth].request.url", "whitespace"),
    (REQ, "url", "https://a.example/" + "x" * 2100, "steps[auth].request.url", "at most 2048"),
    (REQ, "url", DROP, "steps[auth].request.url", "is required"),
    (REQ, "method", "BREW", "steps[auth].request.method", "must be one of"),
    (REQ, "method", 1, "steps[auth].request.method", "type str"),
    (REQ, "timeout_seconds", 0, "steps[auth].request.timeout_seconds", "between"),
    (REQ, "timeout_seconds", 10**400, "steps[auth].request.timeout_seconds", "out of range"),
    (REQ, "timeout_seconds", True, "steps[auth].request.timeout_seconds", "type"),
    (REQ, "headers", {"Host": "x"}, "steps[auth].request.headers", "set by duecall"),
    (REQ, "headers", {"X": 1}, "steps[auth].request.headers", "strings"),
    (REQ, "headers", {"X": "{{ nope }}"}, "steps[auth].request.headers.X", "unknown name"),
    (REQ, "secret_headers", ["a b"], "steps[auth].request.secret_headers", "invalid header"),
    (REQ, "body", {"k": "{{ input.key"}, "steps[auth].request.body.k", "not closed"),
    (REQ, "verb", "GET", "steps[auth].request.verb", "unknown field"),
    (CHARGE, "when", "steps.auth.status ==", "steps[charge].when", "position 21"),
    (CHARGE, "when", "", "steps[charge].when", "non-empty"),
    (AUTH, "when", "steps.charge.status == 1", "steps[auth].when", "not a step this one needs"),
    (AUTH, "when", "status == 200", "steps[auth].when", "unknown name 'status'"),
    (CHARGE, "success", "body.ok = true", "steps[charge].success", "position 9"),
    (CHARGE, "outputs", {"id": "$.body["}, "steps[charge].outputs.id", "invalid JSONPath"),
    (CHARGE, "outputs", {"1id": "$.body"}, "steps[charge].outputs", "output names"),
    (CHARGE, "outputs", {f"o{n}": "$" for n in range(33)}, "steps[charge].outputs", "at most 32"),
    (CHARGE, "outputs", ["$.body"], "steps[charge].outputs", "must be an object"),
    (
        CHARGE,
        "retry_policy",
        {"max_attempts": 500},
        "steps[charge].retry_policy.max_attempts",
        "1 and 50",
    ),
    (
        CHARGE,
        "retry_policy",
        {"bogus": 1},
        "steps[charge].retry_policy",
        "not a valid retry policy",
    ),
    (CHARGE, "retry_policy", [], "steps[charge].retry_policy", "must be an object"),
    (CHARGE, "timeout_seconds", 0.5, "steps[charge].timeout_seconds", "from 1"),
    (CHARGE, "timeout_seconds", "30", "steps[charge].timeout_seconds", "number"),
    (CHARGE, "on_failure", "retry", "steps[charge].on_failure", "must be one of"),
    (("steps", 1, "compensate"), "url", NO_OUTPUT_URL, "steps[charge].compensate.url", "no output"),
    (CHARGE, "compensate", LONG_FORM, "steps[charge].compensate.x", "unknown field"),
    (CHARGE, "compensate", "refund", "steps[charge].compensate", "must be an object"),
]


@pytest.mark.parametrize(("where", "key", "value", "field", "message"), BAD_DEFINITIONS)
def test_bad_definitions_name_the_step_and_field(
    where: tuple[Any, ...], key: str, value: object, field: str, message: str
) -> None:
    values = copy.deepcopy(EXAMPLE)
    target: Any = values
    for part in where:
        target = target[part]
    if value is DROP:
        del target[key]
    else:
        target[key] = value
    error = refused(values)
    assert error.field == field
    assert message in error.message


def test_a_template_may_read_a_transitive_dependency() -> None:
    steps = [
        step(1, outputs={"a": "$.body.a"}),
        step(2, needs=["s1"]),
        step(
            3, needs=["s2"], request={"method": "GET", "url": "https://x/{{ steps.s1.outputs.a}}"}
        ),
    ]
    parse_definition({"name": "chain", "steps": steps})
    steps[2]["needs"] = []
    assert "not a step this one needs" in refused({"name": "chain", "steps": steps}).message


def test_a_dry_run_reports_each_steps_first_problem() -> None:
    values = copy.deepcopy(EXAMPLE)
    values["steps"][0]["outputs"] = {"token": "$.body["}
    values["steps"][1]["when"] = "steps.auth.status =="
    values["steps"][1]["request"]["url"] = "https://p.example/{{ steps.nope.status }}"
    problems = definition_problems(values)
    assert [p.field for p in problems] == ["steps[auth].outputs.token", "steps[charge].request.url"]
    assert definition_problems(EXAMPLE) == []
    values["steps"][1]["needs"] = ["charge"]  # the graph first: nothing else is checked
    assert [p.field for p in definition_problems(values)] == ["steps[charge].needs"]


def test_the_cycle_is_named() -> None:
    steps = [step(1, needs=["s3"]), step(2, needs=["s1"]), step(3, needs=["s2"]), step(4)]
    error = refused({"name": "loop", "steps": steps})
    assert error.field == "steps[s1].needs"
    assert error.message.endswith("s1 -> s3 -> s2 -> s1")


def test_step_limits_default_to_100_with_a_hard_cap_of_250() -> None:
    parse_definition({"name": "big", "steps": [step(n) for n in range(100)]})
    assert refused({"name": "big", "steps": [step(n) for n in range(101)]}).field == "steps"
    parse_definition({"name": "big", "steps": [step(n) for n in range(250)]}, max_steps=250)
    error = refused({"name": "big", "steps": [step(n) for n in range(251)]}, max_steps=250)
    assert error.message == "at most 250 steps (251 given)"
    with pytest.raises(ValueError, match="max_steps"):
        parse_definition(EXAMPLE, max_steps=HARD_MAX_STEPS + 1)


def test_a_long_chain_of_steps_parses() -> None:
    steps = [step(0)] + [step(n, needs=[f"s{n - 1}"]) for n in range(1, 250)]
    definition = parse_definition({"name": "chain", "steps": steps}, max_steps=250)
    assert definition.needs["s249"] == ("s248",)


@pytest.mark.parametrize(
    "values",
    [
        None,
        [],
        "definition",
        {"name": "n", "steps": [None]},
        {"name": "n", "steps": "s1"},
        {"name": "n\x00", "steps": [step(1)]},
        {"name": "n", "steps": [step(1, id="s\ud800")]},
        {"name": "n", "steps": [step(1, when="status\x00")]},
        {"name": "n", "steps": [step(1, **{"extra\x00": 1})]},
        {"name": "n", "input": {"k": "v\x00"}, "steps": [step(1)]},
        {"name": "n", "input": {"k": "\udfff"}, "steps": [step(1)]},
        {"name": "n", "steps": [step(1, request={"method": "GET", "url": "https://x/\x00"})]},
        {"name": "n", "steps": [step(1, request={**GET, "body": "\0"})]},
    ],
)  # fmt: skip
def test_hostile_definitions_are_refused(values: object) -> None:
    error = refused(values)
    assert "\x00" not in error.field


def test_input_strings_are_data_not_templates() -> None:
    definition = parse_definition(changed(lambda d: d.update(input={"key": "{{ run.id }}"})))
    context = evaluation_context(input_values=definition.input, run_id="r", run_name="n", steps={})
    sent = render_request(definition.step("auth").request, context, "steps[auth].request")
    assert sent.body == '{"k":"{{ run.id }}"}'


def test_deeply_nested_input_is_refused() -> None:
    deep: dict[str, Any] = {}
    for _ in range(1000):
        deep = {"a": deep}
    assert "nested deeper" in refused({"name": "n", "input": deep, "steps": [step(1)]}).message


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["{{ input.key }}", "{{", "$.body", "status < 3", "GET", "auth"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_places = st.sampled_from(
    [(), ("steps", 0), ("steps", 1), ("steps", 0, "request"), ("steps", 1, "request"),
     ("steps", 1, "compensate"), ("steps", 1, "retry_policy"), ("steps", 0, "outputs")]
)  # fmt: skip
_keys = st.sampled_from(
    ["name", "on_failure", "input", "steps", "id", "needs", "when", "success", "request",
     "outputs", "retry_policy", "timeout_seconds", "compensate", "method", "url", "headers",
     "body", "secret_headers", "follow_redirects", "max_attempts", "token", "x"]
)  # fmt: skip


def _reach(values: object, where: tuple[Any, ...]) -> object:
    """The value at ``where`` in ``values``, or None when an earlier change removed it."""
    for part in where:
        if isinstance(values, list) and not (isinstance(part, int) and part < len(values)):
            return None
        if isinstance(values, dict | list) and (isinstance(values, list) or part in values):
            values = values[part]
        else:
            return None
    return values


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(st.tuples(_places, _keys, _json_values), min_size=1, max_size=3))
def test_any_changed_definition_parses_or_is_refused_naming_a_field(
    changes: list[tuple[tuple[Any, ...], str, object]],
) -> None:
    values = copy.deepcopy(EXAMPLE)
    for where, key, value in changes:
        target = _reach(values, where)
        if isinstance(target, dict):
            target[key] = value
    problems = definition_problems(values)
    for problem in problems:
        assert problem.field
        assert "\x00" not in problem.field
    if not problems:
        assert parse_definition(values).name == values["name"]


@settings(max_examples=300, deadline=None, database=None)
@given(_json_values, _json_values)
def test_rendering_any_input_gives_a_checked_request_or_names_the_field(
    key: object, token: object
) -> None:
    definition = parse_definition(EXAMPLE)
    context = evaluation_context(
        input_values={"key": key},
        run_id="r",
        run_name="n",
        steps={"auth": {"state": "succeeded", "status": 200, "outputs": {"token": token}}},
    )
    for step_id in ("auth", "charge"):
        field = f"steps[{step_id}].request"
        refused: InvalidRequestError | None = None
        try:
            render_request(definition.step(step_id).request, context, field)
        except InvalidRequestError as error:
            refused = error
        assert refused is None or refused.field.startswith(field)
