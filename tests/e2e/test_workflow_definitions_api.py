"""Stored workflow definitions and validate, over real HTTP against a real `duecall serve` on a
real PostgreSQL: versions 1, 2, ... and the idempotent PUT (also with a sealed secret
header); the newest and an older version; the list (read-your-writes, keyset pages); runs of
a stored definition by name and by version, through to their steps' calls at a real target;
the two submit forms, exactly one; validate, valid (the levels) and not (every problem named
by step and field; nothing stored); tenant isolation; hostile names and bodies.
"""

import uuid
from typing import Any

import httpx
import pytest

from harness.target_server import TargetServer
from tests.support.problems import assert_problem
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

DEFINITIONS = "/v1/workflows/definitions"
RUNS = "/v1/workflows/runs"
VALIDATE = "/v1/workflows/validate"


def unique(prefix: str = "wf") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def one_step(url: str = "https://example.com/a", **step: Any) -> dict[str, Any]:
    return {"steps": [{"id": "a", "request": {"method": "POST", "url": url}, **step}]}


def put(api: httpx.Client, name: str, definition: dict[str, Any],
        headers: dict[str, str] | None = None, status: int = 201) -> dict[str, Any]:
    answer = api.put(f"{DEFINITIONS}/{name}", json=definition, headers=headers)
    assert answer.status_code == status, answer.text
    stored: dict[str, Any] = answer.json()
    assert answer.headers["location"] == f"{DEFINITIONS}/{name}/versions/{stored['version']}"
    assert ("x-duecall-position" in answer.headers) == (status == 201)
    return stored


def test_versions_and_the_idempotent_put(api: httpx.Client) -> None:
    name = unique()
    first = put(api, name, one_step())
    assert (first["name"], first["version"], first["steps"]) == (name, 1, 1)
    assert first["definition"]["name"] == name  # filled in from the path

    again = put(api, name, {**one_step(), "name": name}, status=200)  # the same, named
    assert (again["version"], again["created_at"]) == (1, first["created_at"])

    changed = one_step(when="input.go == true")
    second = put(api, name, changed)
    assert second["version"] == 2
    assert put(api, name, changed, status=200)["version"] == 2
    third = put(api, name, one_step())  # the same as version 1, not as the newest: new
    assert third["version"] == 3

    newest = api.get(f"{DEFINITIONS}/{name}").json()
    assert newest["version"] == 3
    old = api.get(f"{DEFINITIONS}/{name}/versions/2")
    assert old.status_code == 200, old.text
    assert old.json()["definition"]["steps"][0]["when"] == "input.go == true"
    assert old.json()["version"] == 2
    assert_problem(api.get(f"{DEFINITIONS}/{name}/versions/4"), 404)
    assert_problem(api.get(f"{DEFINITIONS}/{unique()}"), 404)
    assert_problem(api.get(f"{DEFINITIONS}/{name}/versions/0"), 422)


def test_a_secret_header_is_stored_sealed_and_the_same_put_stays_idempotent(
    api: httpx.Client,
) -> None:
    name = unique()
    definition = one_step()
    definition["steps"][0]["request"]["headers"] = {"Authorization": "Bearer s3cret"}
    stored = put(api, name, definition)
    shown = stored["definition"]["steps"][0]["request"]["headers"]["Authorization"]
    assert shown == "[REDACTED]"  # stored sealed, never shown, not even as ciphertext
    got = str(api.get(f"{DEFINITIONS}/{name}").json())
    assert "s3cret" not in got
    assert "enc:v1:" not in got

    assert put(api, name, definition, status=200)["version"] == 1
    definition["steps"][0]["request"]["headers"]["Authorization"] = "Bearer other"
    assert put(api, name, definition)["version"] == 2


def test_a_definition_the_domain_refuses_is_a_422_naming_the_field_and_stores_nothing(
    api: httpx.Client,
) -> None:
    name = unique()
    definition = {"steps": [
        {"id": "a", "request": {"method": "GET", "url": "https://e.example"}},
        {"id": "b", "needs": ["nope"], "request": {"method": "GET", "url": "https://e.example"}},
    ]}
    problem = assert_problem(api.put(f"{DEFINITIONS}/{name}", json=definition), 422)
    assert problem["errors"][0]["field"] == "steps[b].needs"
    assert_problem(api.get(f"{DEFINITIONS}/{name}"), 404)

    other = assert_problem(api.put(f"{DEFINITIONS}/{name}", json={**one_step(), "name": "x"}),
                           422)
    assert other["errors"][0]["field"] == "name"


@pytest.mark.parametrize("path", [
    "a%20b", "-lead", "x" * 129, "a%00b", "%F0%9F%98%80", "a;b", ".hidden",
])
def test_hostile_names_are_refused_not_crashed(api: httpx.Client, path: str) -> None:
    for answer in (api.put(f"{DEFINITIONS}/{path}", json=one_step()),
                   api.get(f"{DEFINITIONS}/{path}"),
                   api.get(f"{DEFINITIONS}/{path}/versions/1")):
        assert answer.status_code in (404, 422), answer.text
        assert_problem(answer, answer.status_code)


def test_hostile_bodies_are_refused_not_crashed(api: httpx.Client) -> None:
    path = f"{DEFINITIONS}/{unique()}"
    assert_problem(api.put(path, json=[1, 2]), 422)
    assert_problem(api.put(path, content=b"{not json", headers={"content-type":
                                                                "application/json"}), 422)
    deep: Any = "x"
    for _ in range(200):
        deep = {"d": deep}
    assert assert_problem(api.put(path, json={**one_step(), "input": deep}), 422)["errors"]
    huge = assert_problem(api.put(path, json={**one_step(), "input": {"x": "y" * 1_100_000}}),
                          422)
    assert huge["errors"][0]["field"].startswith("input")
    many = {"steps": [{"id": f"s{n}", "request": {"method": "GET", "url": "https://e.example"}}
                      for n in range(300)]}
    assert assert_problem(api.put(path, json=many), 422)["errors"][0]["field"] == "steps"
    text = "\x00"
    nul = api.put(path, json={**one_step(), "input": {"x": text}})
    assert nul.status_code == 422, nul.text
    assert_problem(api.get(f"{DEFINITIONS}/{path.rsplit('/', 1)[1]}"), 404)


def test_the_list_is_the_tenants_newest_first_in_pages(
    api: httpx.Client, as_tenant: Any
) -> None:
    headers = as_tenant(unique("list"))
    names = [unique() for _ in range(3)]
    position = "0"
    for name in names:
        answer = api.put(f"{DEFINITIONS}/{name}", json=one_step(), headers=headers)
        assert answer.status_code == 201, answer.text
        position = answer.headers["x-duecall-position"]
    again = api.put(f"{DEFINITIONS}/{names[0]}", json=one_step(when="true"), headers=headers)
    position = again.headers["x-duecall-position"]

    listed = api.get(DEFINITIONS, params={"min_position": position, "limit": 2},
                     headers=headers)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert not page["meta"]["stale"]
    assert [i["name"] for i in page["items"]] == [names[2], names[1]]
    rest = api.get(DEFINITIONS, params={"cursor": page["next_cursor"]}, headers=headers).json()
    assert [(i["name"], i["version"]) for i in rest["items"]] == [(names[0], 2)]
    assert rest["next_cursor"] is None
    assert_problem(api.get(DEFINITIONS, params={"cursor": "bogus"}, headers=headers), 422)
    assert_problem(api.get(DEFINITIONS, params={"limit": 0}, headers=headers), 422)


def test_tenants_do_not_see_or_change_each_others_definitions(
    api: httpx.Client, as_tenant: Any
) -> None:
    name = unique()
    mine = put(api, name, one_step())
    other = as_tenant(unique("other"))
    assert_problem(api.get(f"{DEFINITIONS}/{name}", headers=other), 404)
    assert_problem(api.get(f"{DEFINITIONS}/{name}/versions/1", headers=other), 404)
    problem = assert_problem(
        api.post(RUNS, json={"definition_name": name}, headers=other), 422
    )
    assert problem["errors"][0]["field"] == "definition_name"

    theirs = api.put(f"{DEFINITIONS}/{name}", json=one_step("https://other.example/x"),
                     headers=other)
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["version"] == 1  # their own name, their own versions
    assert api.get(f"{DEFINITIONS}/{name}").json()["definition"] == mine["definition"]
    again = api.put(f"{DEFINITIONS}/{name}", json=one_step("https://other.example/x"),
                    headers=other)
    assert again.status_code == 200, again.text
    position = theirs.headers["x-duecall-position"]
    listed = api.get(DEFINITIONS, params={"min_position": position}, headers=other).json()
    assert [(i["name"], i["version"]) for i in listed["items"]] == [(name, 1)]


def _two_steps(target: TargetServer) -> dict[str, Any]:
    return {"steps": [
        {"id": "auth", "request": {"method": "POST", "url": f"{target.url}/echo",
                                   "body": {"k": "{{ input.key }}"}},
         "outputs": {"method": "$.body.method"}},
        {"id": "charge", "needs": ["auth"],
         "request": {"method": "POST", "url": f"{target.url}/echo",
                     "headers": {"X-Auth": "{{ steps.auth.outputs.method }}"}}},
    ], "input": {"key": "default"}}


def _finished(api: httpx.Client, run_id: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        run: dict[str, Any] = api.get(f"{RUNS}/{run_id}").json()
        return run if run["status"] in {"succeeded", "failed", "cancelled"} else None

    return wait_until(probe, timeout=20, interval=0.1)


def test_a_run_of_a_stored_definition_by_name_and_by_version(
    api: httpx.Client, target: TargetServer
) -> None:
    name = unique("pay")
    put(api, name, _two_steps(target))
    three = _two_steps(target)
    three["steps"].append({"id": "notify", "needs": ["charge"],
                           "request": {"method": "POST", "url": f"{target.url}/echo"}})
    put(api, name, three)

    newest = api.post(RUNS, json={"definition_name": name, "input": {"key": "k"}})
    assert newest.status_code == 201, newest.text
    run = newest.json()
    assert (run["name"], run["definition_name"], run["definition_version"]) == (name, name, 2)
    assert set(run["steps"]) == {"auth", "charge", "notify"}

    older = api.post(RUNS, json={"definition_name": name, "definition_version": 1})
    assert older.status_code == 201, older.text
    assert older.json()["definition_version"] == 1
    assert set(older.json()["steps"]) == {"auth", "charge"}

    done = _finished(api, run["id"])
    assert done["status"] == "succeeded", done
    assert (done["definition_name"], done["definition_version"]) == (name, 2)
    assert _finished(api, older.json()["id"])["status"] == "succeeded"
    inline = api.post(RUNS, json={"definition": {**_two_steps(target), "name": name}})
    assert (inline.json()["definition_name"], inline.json()["definition_version"]) == (
        None, None)


@pytest.mark.parametrize(("body", "field"), [
    ({}, "definition"),
    ({"definition_version": 1}, "definition"),
    ({"definition": {"name": "x", "steps": []}, "definition_name": "x"}, "definition_name"),
    ({"definition": {"name": "x", "steps": []}, "definition_version": 2}, "definition_version"),
    ({"definition_name": "never-stored-here"}, "definition_name"),
    ({"definition_name": "bad name"}, "definition_name"),
    ({"definition_name": "x", "definition_version": 0}, "definition_version"),
    ({"definition_name": "x", "definition_version": "1"}, "definition_version"),
])
def test_exactly_one_form_of_the_definition(
    api: httpx.Client, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(api.post(RUNS, json=body), 422)
    assert problem["errors"][0]["field"] == field, problem


def test_an_unknown_version_is_a_422_naming_it(api: httpx.Client) -> None:
    name = unique()
    put(api, name, one_step())
    problem = assert_problem(
        api.post(RUNS, json={"definition_name": name, "definition_version": 2}), 422
    )
    assert problem["errors"][0]["field"] == "definition_version"


def test_validate_a_good_definition_gives_its_levels(api: httpx.Client) -> None:
    get = {"method": "GET", "url": "https://e.example/{{ input.id }}"}
    definition = {"name": "fan", "input": {"id": "1"}, "steps": [
        {"id": "a", "request": get},
        {"id": "b", "needs": ["a"], "request": get},
        {"id": "c", "needs": ["a"], "request": get},
        {"id": "d", "needs": ["b", "c"], "request": get},
        {"id": "e", "request": get},
    ]}
    answer = api.post(VALIDATE, json={"definition": definition, "input": {"id": "2"}})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["valid"] is True
    assert result["step_count"] == 5
    assert result["levels"] == [["a", "e"], ["b", "c"], ["d"]]
    assert result["order"] == ["a", "b", "c", "d", "e"]
    assert result["steps"]["d"] == {"needs": ["b", "c"], "level": 2}


def test_validate_names_every_problem_by_step_and_field_and_stores_nothing(
    api: httpx.Client,
) -> None:
    url = "https://e.example/x"
    definition = {"name": "broken", "steps": [
        {"id": "a", "request": {"method": "GET", "url": "https://e.example/{{ input.id }}"}},
        {"id": "b", "needs": ["a"], "request": {"method": "GET", "url": "{{ steps.zz.x }}"}},
        {"id": "c", "needs": ["a"], "request": {"method": "GET", "url": url},
         "outputs": {"v": "$.body[?"}},
        {"id": "d", "needs": ["a"], "request": {"method": "GET", "url": url},
         "when": "steps.a.status ==="},
    ]}
    problem = assert_problem(api.post(VALIDATE, json={"definition": definition}), 422)
    fields = [e["field"] for e in problem["errors"]]
    assert fields == ["definition.steps[b].request.url", "definition.steps[c].outputs.v",
                      "definition.steps[d].when"], problem

    cycle = {"name": "loop", "steps": [
        {"id": "a", "needs": ["b"], "request": {"method": "GET", "url": url}},
        {"id": "b", "needs": ["a"], "request": {"method": "GET", "url": url}},
    ]}
    found = assert_problem(api.post(VALIDATE, json={"definition": cycle}), 422)
    assert found["errors"][0]["field"] == "definition.steps[a].needs"
    assert "cycle" in found["errors"][0]["message"]

    fine = {"name": "fine", "steps": [definition["steps"][0]]}
    missing = assert_problem(api.post(VALIDATE, json={"definition": fine, "input": {}}), 422)
    assert [e["field"] for e in missing["errors"]] == ["definition.steps[a].request.url"]
    bad_input = assert_problem(
        api.post(VALIDATE, json={"definition": fine, "input": {"deep": "\x00"}}), 422
    )
    assert bad_input["errors"][0]["field"].startswith("input"), bad_input
    own_input = assert_problem(api.post(VALIDATE, json={"definition": {**fine, "input": 3}}),
                               422)
    assert [e["field"] for e in own_input["errors"]] == ["definition.input"]
    assert_problem(api.get(f"{DEFINITIONS}/broken"), 404)
    assert_problem(api.get(f"{DEFINITIONS}/fine"), 404)
