"""A run's secret values (``secret_input`` keys, outputs marked ``secret``): refused by the
definition anywhere but a secret header, sealed before any event records them, opened only
to render a secret header, shown ``[REDACTED]``; and a step with secret outputs asks for its
response to be recorded sealed."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

import pytest
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, Mapper, UUIDAsHex

from domain.errors import InvalidRequestError
from domain.redaction import REDACTED
from domain.workflow_definition import definition_problems, parse_definition
from domain.workflow_outputs import StoredOutput, stored_outputs
from domain.workflow_paths import RUN_ROOTS, Scope, Sealed, SecretPaths, Unavailable, resolve
from domain.workflow_run import StepOrder, WorkflowRun
from domain.workflow_secret_values import opening, revealer, sealing, with_secret_defaults
from domain.workflow_templates import parse_template, render_text

RUN_ID = UUID("0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b")
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TOKEN = "tok-9f8e7d6c5b4a"
PASSWORD = "pw-1a2b3c4d5e"


class Box:
    """A secret box whose sealed values hold nothing of the plaintext (a numbered vault)."""

    def __init__(self) -> None:
        self.vault: dict[str, str] = {}

    def seal(self, plaintext: str) -> str:
        sealed = f"enc:v1:{len(self.vault)}"
        self.vault[sealed] = plaintext
        return sealed

    def open(self, sealed: str) -> str:
        return self.vault[sealed]


def new_call_id(key: str) -> UUID:
    return uuid5(RUN_ID, key)


def _definition(charge_headers: dict[str, str] | None = None, **charge: Any) -> dict[str, Any]:
    headers = charge_headers or {"Authorization": "Bearer {{ steps.auth.outputs.token }}"}
    return {
        "name": "charge",
        "secret_input": ["password"],
        "input": {"password": PASSWORD, "user": "ann"},
        "steps": [
            {"id": "auth", "request": {"method": "POST", "url": "https://a.example/token",
                                       "headers": {"X-Password": "{{ input.password }}"},
                                       "secret_headers": ["x-password"]},
             "outputs": {"token": {"path": "$.body.token", "secret": True},
                         "expires": "$.body.expires"}},
            {"id": "charge", "needs": ["auth"],
             "request": {"method": "POST", "url": "https://p.example/charges",
                         "headers": headers, **charge.pop("request", {})},
             **charge},
        ],
    }


def _problem(values: dict[str, Any]) -> InvalidRequestError:
    problems = definition_problems(values)
    assert problems, "the definition was accepted"
    return problems[0]


# -- the definition: a secret value only in a secret header ---------------------------------


@pytest.mark.parametrize(
    ("charge", "field"),
    [
        ({"request": {"url": "https://p.example/{{ steps.auth.outputs.token }}"}},
         "steps[charge].request.url"),
        ({"request": {"body": {"t": "{{ steps.auth.outputs.token }}"}}},
         "steps[charge].request.body.t"),
        ({"request": {"body": "pw={{ input.password }}"}}, "steps[charge].request.body"),
        ({"when": "steps.auth.outputs.token != null"}, "steps[charge].when"),
        ({"success": "input.password == body.p"}, "steps[charge].success"),
        ({"compensate": {"method": "POST", "url": "https://p.example/{{ input.password }}"}},
         "steps[charge].compensate.url"),
    ],
)
def test_a_secret_value_outside_a_secret_header_is_refused_naming_the_field(
    charge: dict[str, Any], field: str
) -> None:
    problem = _problem(_definition(**charge))
    assert problem.field == field
    assert "secret value: only a secret header may use it" in problem.message


def test_a_plain_header_may_not_read_a_secret_but_a_listed_or_sensitive_one_may() -> None:
    plain = _problem(_definition({"X-Token": "{{ steps.auth.outputs.token }}"}))
    assert plain.field == "steps[charge].request.headers.X-Token"
    listed = _definition({"X-Token": "{{ steps.auth.outputs.token }}"},
                         request={"secret_headers": ["X-Token"]})
    sensitive = _definition({"Cookie": "s={{ input.password | urlencode }}"})
    assert parse_definition(listed).step("charge").request.secret_headers == ("x-token",)
    parse_definition(sensitive)


def test_a_plain_output_and_input_stay_usable_anywhere() -> None:
    values = _definition(request={"url": "https://p.example/{{ input.user }}",
                                  "body": {"e": "{{ steps.auth.outputs.expires }}"}})
    definition = parse_definition(values)
    assert definition.secret_input == frozenset({"password"})
    assert definition.step("auth").secret_outputs == frozenset({"token"})


def test_an_object_holding_secrets_is_looked_up_by_name_only() -> None:
    whole = _problem(_definition({"Authorization": "{{ steps.auth.outputs | json }}"}))
    assert whole.field == "steps[charge].request.headers.Authorization"
    assert "holds secret values: look each up by name" in whole.message
    everything = _problem(_definition(request={"body": {"all": "{{ input }}"}}))
    assert everything.field == "steps[charge].request.body.all"


@pytest.mark.parametrize(
    ("secret_input", "message"),
    [
        ("password", "must be a list of input key names"),
        (["a", "a"], "names a key more than once"),
        (["a.b"], "no '.'"),
        ([f"k{n}" for n in range(65)], "at most 64 keys"),
    ],
)
def test_secret_input_is_a_short_list_of_key_names(secret_input: object, message: str) -> None:
    values = {**_definition(), "secret_input": secret_input}
    problem = _problem(values)
    assert problem.field == "secret_input"
    assert message in problem.message


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"path": "$.body.t", "secret": "yes"}, "steps[auth].outputs.t.secret", "true or false"),
        ({"secret": True}, "steps[auth].outputs.t.path", "is required"),
        ({"path": "$.body.t", "hidden": True}, "steps[auth].outputs.t.hidden", "unknown field"),
        ({"path": "$..a..b", "secret": True}, "steps[auth].outputs.t.path", "'..'"),
    ],
)
def test_an_output_object_is_checked_naming_its_field(
    spec: dict[str, Any], field: str, message: str
) -> None:
    values = _definition()
    values["steps"][0]["outputs"] = {"t": spec}
    problem = _problem(values)
    assert (problem.field, message in problem.message) == (field, True)


# -- a run: sealed before recorded, opened only for a secret header ---------------------------


def _recorded(run: WorkflowRun) -> str:
    """Every event the run has pending, as the event store would hold it."""
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    mapper: Mapper[UUID] = Mapper(transcoder=transcoder)
    return "".join(
        mapper.to_stored_event(event).state.decode() for event in run.collect_events()
    )


def _submitted(box: Box, run_input: dict[str, Any] | None = None) -> WorkflowRun:
    return WorkflowRun.submit(
        id=RUN_ID, tenant_id="acme", definition=_definition(), input=run_input, now=NOW,
        secrets=box,
    )


def _orders(run: WorkflowRun, box: Box, seconds: float = 0) -> dict[str, StepOrder]:
    at = NOW + timedelta(seconds=seconds)
    return {o.step_id: o for o in run.advance(at, new_call_id, secrets=box)}


def test_secret_values_are_sealed_in_events_opened_for_secret_headers_and_redacted() -> None:
    box = Box()
    run = _submitted(box, {"password": "given-" + PASSWORD})
    auth = _orders(run, box)["auth"]
    assert auth.request.headers["X-Password"] == "given-" + PASSWORD  # the run's, in clear
    assert auth.seal_response  # its response holds a secret output: recorded sealed
    body = json.dumps({"token": TOKEN, "expires": 3600})
    assert run.record_step_outcome(auth.call_id, "succeeded", 200, {}, body, NOW, secrets=box)
    charge = _orders(run, box, 1)["charge"]
    assert charge.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert not charge.seal_response

    recorded = _recorded(run)
    for secret in (TOKEN, PASSWORD):
        assert secret not in recorded
    token = run.steps["auth"].outputs["token"]
    assert token.secret
    assert box.open(str(token.value)) == json.dumps(TOKEN)
    assert run.steps["auth"].outputs["expires"].value == 3600  # a plain one as it is
    shown = run.describe()
    assert shown["input"]["password"] == REDACTED
    assert shown["steps"]["auth"]["outputs"]["token"]["value"] == REDACTED
    assert shown["steps"]["auth"]["outputs"]["token"]["sha256"] == ""
    assert TOKEN not in repr(shown)
    assert PASSWORD not in repr(shown)


def test_the_definitions_default_is_sealed_and_used_when_no_input_gives_one() -> None:
    box = Box()
    run = _submitted(box)
    assert run.definition_json["input"]["password"].startswith("enc:v1:")
    assert run.definition_json["input"]["user"] == "ann"
    assert _orders(run, box)["auth"].request.headers["X-Password"] == PASSWORD
    assert PASSWORD not in _recorded(run)


def test_a_rerun_seals_its_edited_secret_input() -> None:
    box = Box()
    run = _submitted(box)
    auth = _orders(run, box)["auth"]
    run.record_step_outcome(auth.call_id, "failed", 500, {}, None, NOW, secrets=box)
    run.advance(NOW, new_call_id, secrets=box)
    run.collect_events()
    run.rerun_step("auth", {"password": "edited-secret"}, "ops", NOW, box)
    again = _orders(run, box, 2)["auth"]
    assert again.request.headers["X-Password"] == "edited-secret"
    assert "edited-secret" not in _recorded(run)
    assert run.describe()["steps"]["auth"]["input_override"] == {"password": REDACTED}


def test_without_a_secret_box_a_secret_is_never_recorded_in_clear() -> None:
    with pytest.raises(RuntimeError, match="no secret box"):
        WorkflowRun.submit(id=RUN_ID, tenant_id="acme", definition=_definition(), now=NOW)


def test_a_run_replayed_from_its_events_renders_the_same_secret_header() -> None:
    box = Box()
    run = _submitted(box)
    auth = _orders(run, box)["auth"]
    body = json.dumps({"token": TOKEN})
    run.record_step_outcome(auth.call_id, "succeeded", 200, {}, body, NOW, secrets=box)
    [charge] = run.advance(NOW, new_call_id, secrets=box)
    events = run.collect_events()
    replayed: Any = None
    for event in events:
        replayed = event.mutate(replayed)
    assert isinstance(replayed, WorkflowRun)
    [again] = replayed.running_orders(secrets=box)
    assert again.request.headers["Authorization"] == charge.request.headers["Authorization"]


# -- the pieces ------------------------------------------------------------------------------


def test_a_secret_output_is_kept_whole_or_not_at_all() -> None:
    box = Box()
    stored = stored_outputs({"t": "x" * 100, "plain": 1}, 50, frozenset({"t"}), box.seal)
    assert stored["t"] == StoredOutput("enc:v1:0", 8, "", None, secret=True)
    big = stored_outputs({"t": "x" * 100}, 4, frozenset({"t"}), box.seal)["t"]
    assert (big.value, big.secret, big.unusable is not None) == (None, True, True)
    nul = stored_outputs({"t": "a\x00b"}, 50, frozenset({"t"}), box.seal)["t"]
    assert nul.value is None
    assert nul.unusable is not None
    assert "cannot be stored" in nul.unusable


def test_an_output_recorded_before_secrets_existed_reads_as_plain() -> None:
    old = {"value": 1, "size_bytes": 1, "sha256": "ab", "unusable": None}
    assert StoredOutput.from_dict(old) == StoredOutput(1, 1, "ab")


def test_a_sealed_value_is_opened_only_by_a_reveal_and_followed_inside() -> None:
    box = Box()
    sealed = Sealed(box.seal(json.dumps({"user": "ann", "pw": "p"})))
    context = {"input": {"creds": sealed}}
    assert isinstance(resolve(context, ("input", "creds", "pw")), Unavailable)
    assert resolve(context, ("input", "creds", "pw"), revealer(box.open)) == "p"
    assert isinstance(resolve({"input": {"c": Sealed("enc:v1:bad")}}, ("input", "c"),
                              revealer(box.open)), Unavailable)
    scope = Scope(RUN_ROOTS, secrets=SecretPaths(frozenset({"creds"})), secrets_allowed=True)
    template = parse_template("{{ input.creds.user | upper }}", "h", scope)
    assert render_text(template, context, revealer(box.open)) == "ANN"
    with pytest.raises(InvalidRequestError, match="only a secret header may use it"):
        render_text(template, context)


def test_defaults_seal_once_and_open_back_as_given() -> None:
    box = Box()
    values = {"secret_input": ["k"], "input": {"k": {"n": 1}, "p": "x"}}
    sealed = with_secret_defaults(json.loads(json.dumps(values)), sealing(box.seal))
    assert sealed["input"]["p"] == "x"
    assert sealed["input"]["k"].startswith("enc:v1:")
    assert with_secret_defaults(dict(sealed), sealing(box.seal)) == sealed  # sealed once
    assert with_secret_defaults(dict(sealed), opening(box.open)) == values
