"""``when`` and ``success`` expressions: a tiny grammar, JSON semantics, named errors."""

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidRequestError
from domain.workflow_expressions import MAX_DEPTH, evaluate, parse_expression
from domain.workflow_paths import RESPONSE_ROOTS, RUN_ROOTS, Scope, Unavailable, evaluation_context

SCOPE = Scope(RUN_ROOTS | RESPONSE_ROOTS, {"auth": frozenset({"token", "flags"})})
FIELD = "steps[charge].when"


def context(**response: Any) -> dict[str, object]:
    return evaluation_context(
        input_values={"amount": 12, "currency": "EUR"},
        run_id="run-1",
        run_name="charge",
        steps={"auth": {"state": "succeeded", "status": 200, "outputs": {"token": "t"}}},
        response={"status": 201, "headers": {"Content-Type": "json"}, "body": {"id": 7}} | response,
    )


def holds(text: str, **response: Any) -> bool:
    return evaluate(parse_expression(text, FIELD, SCOPE), context(**response))


@pytest.mark.parametrize(
    "text",
    [
        "steps.auth.status == 200",
        "status < 300",
        "status >= 201 and status <= 201",
        "not (status > 201)",
        "status in [200, 201, 204]",
        "status not in [500]",
        '"EU" in input.currency',
        'headers.content-type == "json"',
        "body.id == 7 or false",
        "body.missing == null",
        "input.amount != 12.5",
        'steps.auth.outputs.token == "t"',
        'steps.auth.state == "succeeded"',
        'run.id == "run-1" and run.name == "charge"',
        "body",
        "not not true",
    ],
)
def test_true_expressions(text: str) -> None:
    assert holds(text)


@pytest.mark.parametrize(
    "text",
    [
        "true == 1",  # booleans are not numbers (JSON, not Python)
        "0 == false",
        'status < "300"',  # order compares two numbers or two strings only
        "body.missing",
        "body.missing > 1",
        "null",
        '""',
        "[]",
        "1 in body",  # an object's keys are strings
        "status == 200 and body.id == 7",
        "steps.auth.outputs.flags",
    ],
)
def test_false_expressions(text: str) -> None:
    assert not holds(text)


def test_and_or_short_circuit_and_precedence() -> None:
    assert holds("true or false and false")  # and binds tighter
    assert not holds("(true or false) and false")


def test_lists_and_objects_compare_item_by_item() -> None:
    assert holds("body == body")
    assert holds("[1, [true, null]] == [1.0, [true, null]]")
    assert not holds("[1, true] == [1, 1]")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("status ==", "unexpected the end"),
        ("status = 200", "unexpected character '='"),
        ("1 < 2 < 3", "comparisons do not chain"),
        ("status == 200 not in [1]", "comparisons do not chain"),
        ("(status == 200", "expected ')'"),
        ("status 200", "expected the end"),
        ('"unterminated', "unterminated string"),
        ('"bad \\x"', "invalid escape"),
        ("a.b == 1", "unknown name 'a'"),
        ("run.tenant == 1", "'run' has only id and name"),
        ("steps.charge.status == 1", "'charge' is not a step this one needs"),
        ("steps.auth.outputs.nope == 1", "has no output 'nope'"),
        ("steps.auth == 1", "use steps.<id>.outputs.<name>"),
        ("steps.auth.status.x == 1", "has no fields"),
        ("not in [1]", "expected a value"),
        ("1" * 50, "number too long"),
        ("status < 1e999", "number out of range"),
        ("status == 1 # comment", "unexpected character '#'"),
    ],
)
def test_bad_expressions_name_the_field_and_position(text: str, message: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        parse_expression(text, FIELD, SCOPE)
    assert raised.value.field == FIELD
    assert message in raised.value.message


def test_errors_give_the_position() -> None:
    with pytest.raises(InvalidRequestError, match="at position 8"):
        parse_expression("status = 200", FIELD, SCOPE)


@pytest.mark.parametrize(
    "text",
    ["", "   ", None, 3, "x" * 1025, "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1)],
)
def test_hostile_or_empty_expressions_are_refused(text: object) -> None:
    with pytest.raises(InvalidRequestError):
        parse_expression(text, FIELD, SCOPE)


@pytest.mark.parametrize("text", ["not " * 200 + "true", "[" * 300 + "]" * 300])
def test_deep_nesting_is_refused_before_recursion_runs_out(text: str) -> None:
    with pytest.raises(InvalidRequestError, match="nested deeper"):
        parse_expression(text, FIELD, SCOPE)


def test_nul_and_lone_surrogates_are_refused_even_in_strings() -> None:
    for text in ("status\x00 == 1", "status == 1\ud800", 'body.x == "\udc00"', "'\x00'"):
        with pytest.raises(InvalidRequestError, match="cannot contain") as raised:
            parse_expression(text, FIELD, SCOPE)
        assert raised.value.field == FIELD


def test_strings_hold_escapes_and_either_quote() -> None:
    assert holds('"a\\"b" == \'a"b\'', body={"x": 1})
    assert holds("'it\\'s' == \"it's\"")


def test_reading_an_unusable_value_names_the_field() -> None:
    ctx = context()
    ctx["steps"]["auth"]["outputs"]["token"] = Unavailable("truncated")  # type: ignore[index]
    for text in ('steps.auth.outputs.token == "t"', "steps.auth.outputs == null"):
        with pytest.raises(InvalidRequestError, match="truncated") as raised:
            evaluate(parse_expression(text, FIELD, SCOPE), ctx)
        assert raised.value.field == FIELD


def test_a_parsed_expression_lists_its_look_ups() -> None:
    expression = parse_expression("steps.auth.status == 200 and body.id in [1]", FIELD, SCOPE)
    assert [p.segments for p in expression.paths] == [("steps", "auth", "status"), ("body", "id")]


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=60))
def test_any_text_parses_or_is_refused_with_the_field_named(text: str) -> None:
    refused: InvalidRequestError | None = None
    try:
        expression = parse_expression(text, FIELD, SCOPE)
    except InvalidRequestError as error:
        refused = error
    if refused is None:
        assert isinstance(evaluate(expression, context()), bool)
    else:
        assert refused.field == FIELD


_atoms = st.sampled_from(["status", "body.id", "1", "2.5", '"a"', "true", "null", "[1, 2]"])
_ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"])


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.tuples(_atoms, _ops, _atoms), min_size=1, max_size=5), st.booleans())
def test_generated_expressions_always_evaluate_to_a_bool(
    comparisons: list[tuple[str, str, str]], use_or: bool
) -> None:
    joiner = " or " if use_or else " and "
    text = joiner.join(f"({a} {op} {b})" for a, op, b in comparisons)
    assert isinstance(holds(text), bool)
    assert holds(f"not ({text})") is not holds(text)
