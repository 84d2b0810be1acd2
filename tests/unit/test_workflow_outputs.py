"""Step outputs: RFC 9535 JSONPath over the response, stored within a step's budget."""

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidRequestError
from domain.workflow_outputs import (
    MAX_OUTPUT_BYTES,
    MAX_SELECTED,
    StoredOutput,
    compile_query,
    extract_outputs,
    response_document,
    stored_outputs,
    usable_outputs,
)
from domain.workflow_paths import Unavailable

DOCUMENT = response_document(
    201,
    {"X-Request-Id": "abc", "Content-Type": "application/json"},
    {"token": "t", "items": [{"id": 1, "ok": True}, {"id": 2, "ok": False}], "n": None},
)


def outputs(**queries: str) -> dict[str, object]:
    compiled = {name: compile_query(query, f"o.{name}") for name, query in queries.items()}
    return extract_outputs(compiled, DOCUMENT)


def test_singular_queries_give_a_value_or_null() -> None:
    assert outputs(
        token="$.body.token",
        status="$.status",
        request_id="$.headers['x-request-id']",
        first="$.body.items[0].id",
        last="$.body.items[-1].id",
        missing="$.body.nope",
        null="$.body.n",
    ) == {
        "token": "t",
        "status": 201,
        "request_id": "abc",
        "first": 1,
        "last": 2,
        "missing": None,
        "null": None,
    }


def test_other_queries_give_the_list_of_values_selected() -> None:
    assert outputs(
        ids="$.body.items[*].id",
        ok="$.body.items[?@.ok == true].id",
        none="$.body.items[?@.id > 5].id",
        count="$.body.items[?count(@.*) == 2].id",
        deep="$..id",
    ) == {"ids": [1, 2], "ok": [1], "none": [], "count": [1, 2], "deep": [1, 2]}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("body.token", "invalid JSONPath"),
        ("$.body[", "invalid JSONPath"),
        ("$.body[?match(@.a, 'a.*')]", "match"),  # no regular expressions: no ReDoS
        ("$.body[?search(@.a, 'a')]", "search"),
        ("$.body[?nope(@)]", "invalid JSONPath"),
        ("$.a\x00", "NUL"),
        ("$.a\ud800", "lone surrogates"),
        ("$" + ".a" * 300, "at most 512 characters"),
        ("", "must be a JSONPath query"),
        ("$" + "[?(" * 170, "invalid JSONPath"),  # deep nesting within the length limit
        ("$..a..b", "at most 1 '..'"),  # nested walks of the whole response
        ("$..[?@..x]", "at most 1 '..'"),
    ],
)
def test_bad_queries_name_the_field(query: str, message: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        compile_query(query, "steps[a].outputs.x")
    assert raised.value.field == "steps[a].outputs.x"
    assert message in raised.value.message


def test_a_query_the_response_defeats_names_the_output() -> None:
    deep: object = 1
    for _ in range(200):
        deep = [deep]
    query = {"all": compile_query("$..*", "f")}
    with pytest.raises(InvalidRequestError) as raised:
        extract_outputs(query, response_document(200, {}, deep), "steps[a].outputs")
    assert raised.value.field == "steps[a].outputs.all"


def test_a_query_selecting_too_many_values_is_refused() -> None:
    document = response_document(200, {}, list(range(MAX_SELECTED + 1)))
    with pytest.raises(InvalidRequestError, match="more than"):
        extract_outputs({"all": compile_query("$.body[*]", "f")}, document)
    document = response_document(200, {}, list(range(MAX_SELECTED)))
    selected = extract_outputs({"all": compile_query("$.body[*]", "f")}, document)["all"]
    assert selected == list(range(MAX_SELECTED))


def test_outputs_within_the_budget_are_kept_whole() -> None:
    stored = stored_outputs({"a": {"x": [1, "é"]}, "b": None})
    text = json.dumps({"x": [1, "é"]}, separators=(",", ":"), ensure_ascii=False).encode()
    assert stored["a"] == StoredOutput({"x": [1, "é"]}, len(text), hashlib.sha256(text).hexdigest())
    assert usable_outputs(stored) == {"a": {"x": [1, "é"]}, "b": None}
    assert StoredOutput.from_dict(stored["a"].as_dict()) == stored["a"]


def test_an_output_over_the_budget_is_truncated_with_its_hash() -> None:
    big = "é" * (MAX_OUTPUT_BYTES // 2)  # two bytes a character: over the budget
    stored = stored_outputs({"small": "s", "big": big, "after": 1})
    whole = json.dumps(big, ensure_ascii=False).encode()
    truncated = stored["big"]
    assert truncated.unusable is not None
    assert truncated.unusable.startswith("truncated")
    assert truncated.sha256 == hashlib.sha256(whole).hexdigest()
    assert truncated.size_bytes == len(whole)
    assert isinstance(truncated.value, str)
    kept = len(truncated.value.encode())
    assert kept <= MAX_OUTPUT_BYTES - 3  # "s" took 3 bytes of the budget
    assert whole.decode().startswith(truncated.value)  # cut on a character boundary
    assert stored["after"].unusable is not None  # nothing left for it
    usable = usable_outputs(stored)
    assert usable["small"] == "s"
    assert isinstance(usable["big"], Unavailable)


@pytest.mark.parametrize("value", ["a\x00b", {"k": "\ud800"}, float("nan")])
def test_unstorable_outputs_are_kept_as_unusable(value: object) -> None:
    stored = stored_outputs({"x": value})["x"]
    assert stored.value is None
    assert stored.unusable is not None
    assert stored.unusable.startswith("cannot be stored")


@settings(max_examples=100, deadline=None, database=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner),
            max_leaves=20,
        ),
        max_size=5,
    ),
    st.integers(min_value=0, max_value=300),
)
def test_stored_outputs_never_exceed_the_budget(values: dict[str, object], budget: int) -> None:
    stored = stored_outputs(values, budget)
    kept = 0
    for output in stored.values():
        if output.unusable is None:
            kept += output.size_bytes
        elif isinstance(output.value, str):
            kept += len(output.value.encode("utf-8", errors="surrogatepass"))
    assert kept <= budget
    assert list(stored) == list(values)
