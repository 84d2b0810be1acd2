"""The OpenAPI schema of a schedule's spec admits what the API takes: whatever the model and the
domain accept, the schema admits, and what the schema refuses the API refuses (schemathesis
holds the API to both). The domain's rules a schema cannot state (a cron field that does not
parse, an unknown zone, a spec that never fires) are 422s naming the field."""

import functools
from typing import Any

import jsonschema_rs
import pytest
from pydantic import ValidationError

from domain.errors import InvalidRequestError
from interfaces.api.app import create_app
from interfaces.api.schedule_schemas import ScheduleSpecCreate


@functools.cache
def schemas() -> dict[str, Any]:
    found: dict[str, Any] = create_app().openapi()["components"]["schemas"]
    return found


def _schema_admits(spec: dict[str, Any]) -> bool:
    schema = {**schemas()["ScheduleSpecCreate"], "components": {"schemas": schemas()}}
    validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
    return bool(validator.is_valid(spec))


def _api_takes(spec: dict[str, Any]) -> bool:
    try:
        ScheduleSpecCreate.model_validate(spec).to_domain()
    except (ValidationError, InvalidRequestError):
        return False
    return True


@pytest.mark.parametrize(
    ("spec", "admitted"),
    [
        ({"cron": "0 9 * * MON-FRI"}, True),
        ({"cron": "0 0 30 2 *"}, True),  # never fires: the domain's 422
        ({"cron": "\t0 9 * * *"}, False),
        ({"cron": "0 9 * * * é"}, False),
        ({"cron": "x" * 201}, False),
        ({"cron": ""}, False),
        ({"interval_seconds": 60}, True),
        ({"interval_seconds": 60.0}, True),
        ({"interval_seconds": 0.5}, False),
        ({"interval_seconds": 0}, False),
        ({"interval_seconds": True}, False),
        ({"interval_seconds": "60"}, False),
        ({"cron": "0 9 * * *", "interval_seconds": 60}, False),
        ({"cron": "0 9 * * *", "interval_seconds": None}, True),
        ({"cron": None, "interval_seconds": 60}, True),
        ({"cron": None, "interval_seconds": None}, False),
        ({}, False),
        ({"cron": "0 9 * * *", "timezone": "Europe/London"}, True),
        ({"cron": "0 9 * * *", "timezone": "America/Argentina/ComodRivadavia"}, True),
        ({"cron": "0 9 * * *", "timezone": "Etc/GMT+5"}, True),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus_Mons"}, True),  # the domain's 422
        ({"cron": "0 9 * * *", "timezone": "../etc/passwd"}, False),
        ({"cron": "0 9 * * *", "timezone": "Europe//London"}, False),
        ({"cron": "0 9 * * *", "timezone": "/UTC"}, False),
        ({"cron": "0 9 * * *", "timezone": ""}, False),
        ({"cron": "0 9 * * *", "timezone": "A" * 65}, False),
        ({"cron": "0 9 * * *", "timezone": None}, False),
        ({"interval_seconds": 900, "starting": "00:05"}, True),
        ({"interval_seconds": 900, "starting": "23:59:59"}, True),
        ({"interval_seconds": 900, "starting": "24:00"}, False),
        ({"interval_seconds": 900, "starting": "7:05"}, False),
        ({"interval_seconds": 900, "starting": "\u0660\u0667:\u0660\u0665"}, False),
        ({"cron": "0 9 * * *", "gap": "skip", "fold": "both", "on_missed": "all",
          "overlap": "buffer_one"}, True),
        ({"cron": "0 9 * * *", "gap": "SKIP"}, False),
        ({"cron": "0 9 * * *", "catchup_rate_per_second": 0}, False),
        ({"cron": "0 9 * * *", "jitter_seconds": 3600}, True),
        ({"cron": "0 9 * * *", "jitter_seconds": 3600.5}, False),
        ({"cron": "0 9 * * *", "max_runs": 1, "pause_after_failures": 1}, True),
        ({"cron": "0 9 * * *", "max_runs": 0}, False),
        ({"cron": "0 9 * * *", "start_at": "2030-01-01T00:00:00Z"}, True),
        ({"cron": "0 9 * * *", "start_at": "2030-01-01T00:00:00"}, False),  # no offset
        ({"cron": "0 9 * * *", "colour": "red"}, False),
    ],
)
def test_a_spec_is_refused_by_the_schema_only_when_the_api_refuses_it(
    spec: dict[str, Any], admitted: bool
) -> None:
    assert _schema_admits(spec) == admitted
    if _api_takes(spec):
        assert admitted
    if not admitted:
        assert not _api_takes(spec)
