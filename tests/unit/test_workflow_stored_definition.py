"""The StoredWorkflowDefinition aggregate and its document rules: versions 1, 2, ... (the
aggregate's own), the name filled in or refused, the same document (its secret values
compared opened, key order aside) recognised, the bound on versions, a replay from events."""

from typing import Any

import pytest

from domain.errors import InvalidRequestError
from domain.workflow_secrets import sealed_definition
from domain.workflow_stored_definition import (
    MAX_VERSIONS,
    StoredWorkflowDefinition,
    check_version,
    document_named,
    stored_definition_id,
)


def _seal(value: str) -> str:
    return "enc:v1:" + value[::-1]


def _open(value: str) -> str:
    return value.removeprefix("enc:v1:")[::-1]


def definition(url: str = "https://e.example/a", **extra: Any) -> dict[str, Any]:
    return {"steps": [{"id": "a", "request": {"method": "GET", "url": url}}], **extra}


def test_the_name_is_filled_in_first_or_must_match() -> None:
    document = document_named(definition(on_failure="continue"), "pay")
    assert list(document) == ["name", "steps", "on_failure"]
    assert document["name"] == "pay"
    assert document_named({**definition(), "name": "pay"}, "pay")["name"] == "pay"
    with pytest.raises(InvalidRequestError) as refused:
        document_named({**definition(), "name": "other"}, "pay")
    assert refused.value.field == "name"


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 129, "a/b", "é"])
def test_a_name_breaking_the_run_names_rule_is_refused(name: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        document_named(definition(), name)
    assert refused.value.field == "name"


def test_a_document_is_checked_whole_naming_the_field() -> None:
    broken = {"steps": [{"id": "a", "needs": ["zz"],
                         "request": {"method": "GET", "url": "https://e.example"}}]}
    with pytest.raises(InvalidRequestError) as refused:
        document_named(broken, "pay")
    assert refused.value.field == "steps[a].needs"
    two = {"steps": [*definition()["steps"],
                     {"id": "b", "request": {"method": "GET", "url": "https://e.example"}}]}
    assert document_named(two, "pay", max_steps=2)["steps"] == two["steps"]
    with pytest.raises(InvalidRequestError) as too_many:
        document_named(two, "pay", max_steps=1)  # the deployment's limit
    assert too_many.value.field == "steps"
    with pytest.raises(InvalidRequestError):
        document_named([definition()], "pay")


def test_versions_are_the_aggregates_own_and_each_event_carries_its_document() -> None:
    first = document_named(definition(), "pay")
    stored = StoredWorkflowDefinition.register("acme", "pay", first)
    assert stored.id == stored_definition_id("acme", "pay")
    assert stored.id != stored_definition_id("other", "pay")
    assert stored.id != stored_definition_id("acme", "pay2")
    second = document_named(definition("https://e.example/b"), "pay")
    assert stored.add_version(second) == 2
    assert stored.describe()["version"] == 2
    assert stored.describe()["steps"] == 1

    events = stored.collect_events()
    assert [type(e).__name__ for e in events] == ["Registered", "VersionAdded"]
    replayed = None
    for e in events:
        replayed = e.mutate(replayed)
    assert isinstance(replayed, StoredWorkflowDefinition)
    assert (replayed.tenant_id, replayed.name, replayed.version) == ("acme", "pay", 2)
    assert replayed.definition == second
    as_of_one = events[0].mutate(None)
    assert as_of_one.definition == first


def test_the_same_document_is_recognised_key_order_and_sealed_values_aside() -> None:
    given = document_named(definition(), "pay")
    given["steps"][0]["request"]["headers"] = {"Authorization": "Bearer s3cret"}
    stored = StoredWorkflowDefinition.register("acme", "pay", sealed_definition(given, _seal))
    assert "s3cret" not in str(stored.definition)

    reordered = {"steps": given["steps"], "name": "pay"}
    assert stored.same_as_newest(reordered, _open)
    changed = document_named(definition(), "pay")
    changed["steps"][0]["request"]["headers"] = {"Authorization": "Bearer other"}
    assert not stored.same_as_newest(changed, _open)

    def broken(_: str) -> str:
        raise ValueError("another key")

    assert not stored.same_as_newest(given, broken)  # cannot tell: a new version


def test_versions_are_bounded() -> None:
    stored = StoredWorkflowDefinition.register("acme", "pay", document_named(definition(), "p"))
    for _ in range(MAX_VERSIONS - 1):
        stored.add_version(stored.definition)
    assert stored.version == MAX_VERSIONS
    with pytest.raises(InvalidRequestError) as refused:
        stored.add_version(stored.definition)
    assert refused.value.field == "definition"
    assert stored.version == MAX_VERSIONS


@pytest.mark.parametrize("version", [0, -1, MAX_VERSIONS + 1, True, "1", 1.0, None])
def test_a_version_number_out_of_range_or_of_a_wrong_type_is_refused(version: object) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        check_version(version)
    assert refused.value.field == "definition_version"
    assert check_version(1) == 1
