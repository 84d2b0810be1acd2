"""A schedule's workflow template: checked as a run's submit checks its definition, errors
named under ``workflow.``; a schedule with one fires runs (``workflow_run`` on its fires),
shows it redacted; a run it started reports its end (``run_outcome_messages``)."""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from application.outbox import SCHEDULE, run_outcome_messages
from domain.errors import InvalidRequestError
from domain.redaction import SEALED_PREFIX
from domain.schedule import FireOutcome, Schedule
from domain.schedule_spec import ScheduleSpec
from domain.schedule_workflow import check_template, is_workflow_template
from domain.workflow_run import WorkflowRun
from domain.workflow_secrets import sealed_definition

NOW = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
DEFINITION: dict[str, Any] = {
    "name": "nightly",
    "steps": [
        {"id": "a", "request": {"method": "GET", "url": "https://a.example/x",
                                "headers": {"Authorization": "Bearer s3cret"}}},
        {"id": "b", "needs": ["a"], "request": {"method": "POST", "url": "https://b.example"}},
    ],
}
TEMPLATE = {"workflow": {"definition": DEFINITION, "input": {"day": "mon"}}}


def _schedule(template: dict[str, Any] = TEMPLATE) -> Schedule:
    schedule = Schedule.create(
        id=uuid4(),
        tenant_id="acme",
        name="runs",
        template=template,
        spec=ScheduleSpec.from_dict({"cron": "* * * * *"}),
        now=NOW,
    )
    schedule.collect_events()
    return schedule


def test_a_workflow_template_is_checked_and_kept_as_json() -> None:
    checked = check_template(TEMPLATE)
    assert is_workflow_template(checked)
    assert checked == {"workflow": {"definition": DEFINITION, "input": {"day": "mon"}}}
    assert check_template({"workflow": {"definition": DEFINITION}})["workflow"]["input"] == {}
    assert not is_workflow_template(check_template({"request": {"method": "GET",
                                                                "url": "https://a.example"}}))


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ({"workflow": "x"}, "workflow"),
        ({"workflow": {}}, "workflow.definition"),
        ({"workflow": {"definition": DEFINITION, "extra": 1}}, "workflow.extra"),
        ({"workflow": {"definition": DEFINITION}, "request": {}}, "request"),
        ({"workflow": {"definition": []}}, "workflow.definition"),
        ({"workflow": {"definition": DEFINITION, "input": [1]}}, "workflow.input"),
        ({"workflow": {"definition": DEFINITION, "input": {"x": float("nan")}}},
         "workflow.input"),
        ({"workflow": {"definition": {**DEFINITION, "steps": []}}},
         "workflow.definition.steps"),
        ({"workflow": {"definition": {**DEFINITION, "steps": [
            DEFINITION["steps"][0], {**DEFINITION["steps"][1], "needs": ["zz"]}]}}},
         "workflow.definition.steps[b].needs"),
    ],
)
def test_a_bad_workflow_template_names_the_field(template: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        check_template(template)
    assert raised.value.field == field


def test_the_deployment_step_limit_applies() -> None:
    with pytest.raises(InvalidRequestError) as raised:
        check_template(TEMPLATE, max_steps=1)
    assert raised.value.field.startswith("workflow.definition.steps")


def test_its_fires_start_runs_and_count_their_outcomes() -> None:
    schedule = _schedule()
    assert schedule.starts_runs
    [order] = schedule.apply(schedule.due_fires(datetime(2026, 1, 1, 12, 1, 1, tzinfo=UTC)),
                             NOW, lambda _: UUID(int=7))
    events: list[Any] = list(schedule.collect_events())
    [fired] = events
    assert order.workflow_run
    assert fired.workflow_run
    assert schedule.in_flight == {UUID(int=7): order.nominal}
    assert schedule.record_outcome(UUID(int=7), FireOutcome.FAILED, NOW)
    assert (schedule.failed, schedule.in_flight) == (1, {})
    trigger = schedule.trigger(UUID(int=8), NOW)
    assert trigger.workflow_run


def test_a_call_schedule_fires_calls_and_shows_no_workflow() -> None:
    schedule = _schedule({"request": {"method": "GET", "url": "https://a.example"}})
    assert not schedule.starts_runs
    assert not schedule.trigger(UUID(int=8), NOW).workflow_run
    described = schedule.describe()
    assert described["workflow"] is None
    assert described["call"]["request"]["url"] == "https://a.example"


def test_it_is_shown_with_sealed_values_redacted() -> None:
    sealed = sealed_definition(DEFINITION, lambda value: f"{SEALED_PREFIX}{value[::-1]}")
    schedule = _schedule({"workflow": {"definition": sealed, "input": {}}})
    described = schedule.describe()
    assert described["call"] is None
    step = described["workflow"]["definition"]["steps"][0]
    assert step["request"]["headers"]["Authorization"] == "[REDACTED]"
    assert "terc3s" not in repr(described)


def test_a_run_a_schedule_started_tells_it_its_end_once() -> None:
    schedule_id = uuid4()

    def run(origin: str | None) -> WorkflowRun:
        return WorkflowRun.submit(
            id=uuid4(), tenant_id="acme", definition=DEFINITION, now=NOW, origin=origin,
            idempotency_key=f"sched:{schedule_id}:2026-01-01T12:01:00Z",
        )

    fired = run(f"schedule:{schedule_id}")
    assert run_outcome_messages([fired]) == []  # not over
    fired.collect_events()
    fired.cancel("overlap", NOW)
    [message] = run_outcome_messages([fired])
    assert (message.kind, message.service_call_id) == (SCHEDULE, schedule_id)
    assert message.payload == {"outcome": {"run_id": str(fired.id), "status": "cancelled"}}
    fired.collect_events()  # recorded: its end was told in that transaction
    assert run_outcome_messages([fired]) == []
    submitted = run(None)  # a run the API submitted tells no one
    submitted.cancel(None, NOW)
    assert run_outcome_messages([submitted]) == []
