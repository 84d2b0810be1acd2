"""A schedule's workflow template: each fire starts a workflow run instead of a call.

The shape: ``{"workflow": {"definition": {...}, "input": {...}}}``, a definition given inline
(docs/workflows.md) and the input each run gets. The definition is checked as a run's submit
checks it (``parse_definition``), so a schedule never records one no run could take; errors
name the field under ``workflow.`` (``workflow.definition.steps[a].needs``,
``workflow.input``). What a call template is: ``domain.schedule_template``; ``check_template``
takes either.
"""

from collections.abc import Mapping
from typing import Any

from domain.errors import InvalidRequestError
from domain.redaction import redact_payload
from domain.schedule_template import check_call_template
from domain.workflow_definition import HARD_MAX_STEPS, parse_definition
from domain.workflow_run import json_copy
from domain.workflow_templates import check_json_value

WORKFLOW = "workflow"  # the template's key (a call template has ``request``)
_FIELDS = ("definition", "input")


def is_workflow_template(template: Mapping[str, Any]) -> bool:
    """Does this (checked) template start a workflow run, not a call?"""
    return WORKFLOW in template


def check_template(values: object, max_steps: int = HARD_MAX_STEPS) -> dict[str, Any]:
    """A call template or a workflow template, checked and normalised (as recorded)."""
    if isinstance(values, Mapping) and WORKFLOW in values:
        return check_workflow_template(values, max_steps)
    return check_call_template(values)


def check_workflow_template(values: Mapping[str, Any], max_steps: int) -> dict[str, Any]:
    """``{"workflow": {"definition", "input"}}`` checked (``max_steps``: the deployment's
    limit on a definition's steps), as plain JSON values."""
    for name in values:
        if name != WORKFLOW:
            raise InvalidRequestError(name, "unknown field (a workflow template has only "
                                      "`workflow`)")
    workflow = values[WORKFLOW]
    if not isinstance(workflow, Mapping):
        raise InvalidRequestError(WORKFLOW, "must be an object with a definition")
    for name in workflow:
        if name not in _FIELDS:
            raise InvalidRequestError(f"{WORKFLOW}.{name}", "unknown field")
    if "definition" not in workflow:
        raise InvalidRequestError(f"{WORKFLOW}.definition", "is required")
    definition = json_copy(workflow["definition"], f"{WORKFLOW}.definition")
    run_input = json_copy(workflow.get("input") or {}, f"{WORKFLOW}.input")
    try:
        parse_definition(definition, max_steps)
        check_json_value(run_input, "input")
    except InvalidRequestError as error:
        raise InvalidRequestError(_named(error.field), error.message) from None
    return {WORKFLOW: {"definition": definition, "input": run_input}}


def template_definition(template: Mapping[str, Any]) -> dict[str, Any]:
    definition: dict[str, Any] = template[WORKFLOW]["definition"]
    return definition


def template_input(template: Mapping[str, Any]) -> dict[str, Any]:
    run_input: dict[str, Any] = template[WORKFLOW]["input"]
    return run_input


def redacted_workflow(template: Mapping[str, Any]) -> dict[str, Any]:
    """The workflow template to show: sealed (secret) header values redacted."""
    return redact_payload(template[WORKFLOW])


def _named(field: str) -> str:
    """The definition's checks name fields from the definition (``steps[a].needs``), the
    input's from ``input``: here they are under ``workflow.``."""
    if field == "input" or field.startswith(("input.", "input[")):
        return f"{WORKFLOW}.{field}"
    if field == "definition" or field.startswith("definition."):
        return f"{WORKFLOW}.{field}"
    return f"{WORKFLOW}.definition.{field}"

