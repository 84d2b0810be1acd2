"""Templates: look-ups and pure functions in strings, rendered deterministically."""

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidRequestError
from domain.workflow_paths import RUN_ROOTS, Scope, Unavailable, evaluation_context
from domain.workflow_templates import (
    MAX_JSON_DEPTH,
    MAX_LOOKUPS,
    as_text,
    check_json_value,
    parse_json_template,
    parse_template,
    render_json,
    render_text,
)

SCOPE = Scope(RUN_ROOTS, {"auth": frozenset({"token", "user"})})
FIELD = "steps[charge].request.url"
CONTEXT = evaluation_context(
    input_values={"key": "k 1/é", "n": 3, "flag": True, "none": None, "obj": {"a": [1, 2]}},
    run_id="0190-run",
    run_name="charge",
    steps={
        "auth": {
            "state": "succeeded",
            "status": 200,
            "outputs": {"token": "tok", "user": {"id": 9}},
        }
    },
)


def render(text: str) -> str:
    return render_text(parse_template(text, FIELD, SCOPE), CONTEXT)


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("plain text", "plain text"),
        ("", ""),
        ("Bearer {{ steps.auth.outputs.token }}", "Bearer tok"),
        ("{{steps.auth.status}}", "200"),
        ("{{ steps.auth.state }}", "succeeded"),
        ("{{ steps.auth.outputs.user.id }}", "9"),
        ("{{ run.id }}/{{ run.name }}", "0190-run/charge"),
        ("{{ input.n }}-{{ input.flag }}-{{ input.none }}", "3-true-"),
        ("{{ input.obj }}", '{"a":[1,2]}'),
        ("{{ input.obj.a.1 }}", "2"),
        ("{{ input.key | upper }}", "K 1/É"),
        ("{{ input.key | lower | urlencode }}", "k%201%2F%C3%A9"),
        ("{{ input.key | json }}", '"k 1/é"'),
        ("{{ input.missing | default('x') }}", "x"),
        ("{{ input.none | default(5) }}", "5"),
        ("{{ input.n | default(5) }}", "3"),
        ("{{ 'literal' | upper }}", "LITERAL"),
        ('{{ "{{" }} not a look-up', "{{ not a look-up"),
        ("a }} b", "a }} b"),
    ],
)
def test_templates_render(text: str, rendered: str) -> None:
    assert render(text) == rendered


def test_base64_for_basic_authentication() -> None:
    text = "Basic {{ input.key | base64 }}"
    assert render(text) == "Basic " + base64.b64encode("k 1/é".encode()).decode()


def test_a_missing_value_is_an_error_unless_defaulted() -> None:
    template = parse_template("x{{ input.missing | upper }}", FIELD, SCOPE)
    with pytest.raises(InvalidRequestError, match=r"input.missing has no value") as raised:
        render_text(template, CONTEXT)
    assert raised.value.field == FIELD


def test_an_unusable_output_cannot_be_rendered() -> None:
    context = evaluation_context(
        input_values={},
        run_id="r",
        run_name="n",
        steps={"auth": {"outputs": {"token": Unavailable("truncated: 300000 bytes")}}},
    )
    for text in (
        "{{ steps.auth.outputs.token }}",
        "{{ steps.auth.outputs.token | default(1) }}",
        "{{ steps.auth.outputs | json }}",
    ):
        with pytest.raises(InvalidRequestError, match="truncated"):
            render_text(parse_template(text, FIELD, SCOPE), context)


def test_a_value_that_is_not_json_is_refused() -> None:
    context = evaluation_context(
        input_values={"x": [float("nan")]}, run_id="r", run_name="n", steps={}
    )
    for text in ("{{ input.x }}", "{{ input.x | json }}", "{{ input.x | upper }}"):
        with pytest.raises(InvalidRequestError, match="NaN") as raised:
            render_text(parse_template(text, FIELD, SCOPE), context)
        assert raised.value.field == FIELD


def test_a_function_refuses_a_value_that_cannot_be_encoded() -> None:
    context = evaluation_context(input_values={"s": "a\ud800"}, run_id="r", run_name="n", steps={})
    with pytest.raises(InvalidRequestError, match="lone surrogates"):
        render_text(parse_template("{{ input.s | urlencode }}", FIELD, SCOPE), context)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ input.key", "'{{' is not closed by '}}' at position 1"),
        ("x{{ }}", "unexpected the end"),
        ("{{ input.key | nope }}", "expected one of default"),
        ("{{ input.key | default }}", "expected '(' after default"),
        ("{{ input.key | default(input.x) }}", "expected a value"),
        ("{{ input.key | default('a' }}", "expected ')'"),
        ("{{ input.key default }}", "expected '|' or '}}'"),
        ("{{ | upper }}", "expected a name or a value"),
        ("{{ steps.charge.status }}", "'charge' is not a step this one needs"),
        ("{{ steps.auth.outputs.nope }}", "has no output 'nope'"),
        ("{{ env.HOME }}", "unknown name 'env'"),
        ("{{ input.__class__.__mro__ }}", None),  # a look-up, not attribute access: no value
        ("{{ input.key.upper() }}", "unexpected '('"),
        ("a\x00b", "cannot contain NUL"),
        ("a\udc00b", "lone surrogates"),
    ],
)
def test_bad_templates_name_the_field_and_position(text: str, message: str | None) -> None:
    if message is None:
        with pytest.raises(InvalidRequestError, match="has no value"):
            render(text)
        return
    with pytest.raises(InvalidRequestError) as raised:
        parse_template(text, FIELD, SCOPE)
    assert raised.value.field == FIELD
    assert message in raised.value.message


def test_lookups_per_string_are_bounded() -> None:
    parse_template("{{ run.id }}" * MAX_LOOKUPS, FIELD, SCOPE)
    with pytest.raises(InvalidRequestError, match=f"at most {MAX_LOOKUPS}"):
        parse_template("{{ run.id }}" * (MAX_LOOKUPS + 1), FIELD, SCOPE)


def test_messages_show_at_most_a_little_of_a_long_name() -> None:
    for text in ("{{ " + "a" * 100_000 + " }}", "{{ input.key | " + "b" * 100_000 + " }}"):
        with pytest.raises(InvalidRequestError) as raised:
            parse_template(text, FIELD, SCOPE)
        assert len(raised.value.message) < 200


def test_huge_strings_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match="at most"):
        parse_template("x" * (1024 * 1024 + 1), FIELD, SCOPE)


def test_a_json_body_keeps_the_type_of_a_whole_look_up() -> None:
    body = {
        "n": "{{ input.n }}",
        "text": "n={{ input.n }}",
        "obj": "{{ input.obj }}",
        "list": ["{{ input.flag }}", 1.5, None, False],
        "nested": {"k": "{{ input.key }}"},
    }
    template = parse_json_template(body, "steps[a].request.body", SCOPE)
    assert render_json(template, CONTEXT) == {
        "n": 3,
        "text": "n=3",
        "obj": {"a": [1, 2]},
        "list": [True, 1.5, None, False],
        "nested": {"k": "k 1/é"},
    }


def test_json_body_errors_name_the_leaf() -> None:
    with pytest.raises(InvalidRequestError) as raised:
        parse_json_template({"a": [1, {"b": "{{ nope }}"}]}, "steps[a].request.body", SCOPE)
    assert raised.value.field == "steps[a].request.body.a[1].b"


@pytest.mark.parametrize(
    "body",
    [
        float("nan"),
        {"a": float("inf")},
        {1: "x"},
        {"k\x00": 1},
        {"k" * 300: 1},
        {"a": object()},
    ],
)
def test_json_bodies_must_be_json(body: object) -> None:
    with pytest.raises(InvalidRequestError):
        parse_json_template(body, "b", SCOPE)


def test_deep_or_huge_json_bodies_are_refused() -> None:
    deep: object = "x"
    for _ in range(MAX_JSON_DEPTH + 1):
        deep = [deep]
    with pytest.raises(InvalidRequestError, match="nested deeper"):
        parse_json_template(deep, "b", SCOPE)
    with pytest.raises(InvalidRequestError, match="at most 10000 values"):
        parse_json_template(list(range(10_001)), "b", SCOPE)
    with pytest.raises(InvalidRequestError, match="characters of text"):
        parse_json_template(["x" * 600_000, {"y" * 600_000: 1}], "b", SCOPE)
    with pytest.raises(InvalidRequestError, match="characters of text"):
        check_json_value(["x" * 600_000, "y" * 600_000], "input")


@pytest.mark.parametrize(
    ("value", "text"),
    [("s", "s"), (None, ""), (True, "true"), (3, "3"), (2.5, "2.5"), ([1, "a"], '[1,"a"]')],
)
def test_values_are_written_as_json_would_write_them(value: object, text: str) -> None:
    assert as_text(value) == text


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=80))
def test_any_text_parses_or_is_refused_with_the_field_named(text: str) -> None:
    refused: InvalidRequestError | None = None
    try:
        rendered = render_text(parse_template(text, FIELD, SCOPE), CONTEXT)
    except InvalidRequestError as error:
        refused = error
    if refused is None:
        assert rendered == render_text(parse_template(text, FIELD, SCOPE), CONTEXT)
    else:
        assert refused.field == FIELD


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(alphabet=st.characters(exclude_characters="{}", exclude_categories=["Cs"])))
def test_text_without_braces_renders_as_itself(text: str) -> None:
    if "\x00" in text:
        return
    assert render(text) == text


@settings(max_examples=100, deadline=None, database=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(alphabet="ab {}|"),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=10,
    )
)
def test_json_rendering_without_look_ups_is_the_identity(value: object) -> None:
    try:
        template = parse_json_template(value, "b", SCOPE)
    except InvalidRequestError:
        return  # a string that looked like a broken template
    assert json.dumps(render_json(template, CONTEXT)) == json.dumps(value) or "{{" in json.dumps(
        value
    )
