"""Request and response models of the schedule routes (``routes/schedules.py``).

The spec is typed field by field with the bounds, patterns and choices the domain checks
(``domain.schedule_spec``), so that the OpenAPI document describes it, and unknown fields are
refused (422 naming ``spec.<name>``). What a schema cannot state is the domain's, and its 422
names the field too: a cron expression that does not parse (``spec.cron``), an unknown time
zone (``spec.timezone``), a spec that never fires, ``end_at`` not after ``start_at``,
``starting``/``anchor`` with a cron. "Exactly one of ``cron`` and ``interval_seconds``" is in
the schema (``oneOf``) and checked by the domain.
"""

from dataclasses import fields
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator

from application.schedules import MAX_PREVIEW
from domain import cron
from domain.schedule_spec import (
    MAX_CATCHUP,
    MAX_INTERVAL_SECONDS,
    MAX_JITTER_SECONDS,
    MAX_PAUSE_AFTER_FAILURES,
    MAX_RATE_PER_SECOND,
    MAX_RUNS,
    MAX_WINDOW_SECONDS,
    OnMissed,
    OverlapPolicy,
    ScheduleSpec,
)
from domain.schedule_status import MAX_NAME_LENGTH
from domain.wall_clock import MAX_ZONE_LENGTH, DstNote, FoldPolicy, GapPolicy
from interfaces.api.fields import AwareDateTime, Integer, IntegerOrNone, Number, SafeText
from interfaces.api.schemas import (
    MAX_TAGS,
    RequestCreate,
    RequestPublic,
    RetryPolicyCreate,
    Tag,
)

# domain.wall_clock._ZONE_NAME (".." cannot occur: no "." is admitted)
ZONE_NAME = r"^[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*$"
# domain.cron._PRINTABLE_ASCII
PRINTABLE_ASCII = r"^[\x20-\x7e]*$"
# domain.schedule_spec._STARTING (ASCII digits only: the domain's \d would take others too)
STARTING = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?$"
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2199, 12, 31, tzinfo=UTC)
_DEFAULT: dict[str, Any] = {f.name: f.default for f in fields(ScheduleSpec)}

CronText = Annotated[str, Field(min_length=1, max_length=cron.MAX_LENGTH, pattern=PRINTABLE_ASCII)]
ZoneName = Annotated[str, Field(min_length=1, max_length=MAX_ZONE_LENGTH, pattern=ZONE_NAME)]
StartingText = Annotated[str, Field(pattern=STARTING)]


def _wall_time(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


# A wall-clock time in the schedule's zone: an ISO 8601 date and time with no offset
LocalTime = Annotated[
    str,
    BeforeValidator(_wall_time),
    Field(
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$",
        examples=["2030-03-10T02:30:00"],
    ),
]


def in_range(value: datetime | None) -> datetime | None:
    """A time duecall can schedule at: 1970 to 2199 (as a spec's times)."""
    if value is not None and not EARLIEST <= value <= LATEST:
        raise ValueError("must be between 1970-01-01 and 2199-12-31")
    return value


class ScheduleSpecCreate(BaseModel):
    """When a schedule fires, and what it does about DST, missed fires and overlap."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": ["cron"], "properties": {"cron": {"type": "string"}}},
                {
                    "required": ["interval_seconds"],
                    "properties": {"interval_seconds": {"type": "integer"}},
                },
            ]
        },
    )

    cron: CronText | None = Field(
        default=None,
        examples=["*/15 * * * *"],
        description="`[second] minute hour day-of-month month day-of-week [year]` (5 to 7 "
        "fields; `L`, `LW`, `5L`, `MON#2`, names, `@daily` and the like), in `timezone`. "
        "Exactly one of `cron` and `interval_seconds`.",
    )
    interval_seconds: IntegerOrNone = Field(
        default=None,
        ge=1,
        le=MAX_INTERVAL_SECONDS,
        description="Every this many seconds (at least 1), phased by `starting` or `anchor`.",
    )
    starting: StartingText | None = Field(
        default=None,
        examples=["00:05"],
        description="An interval's phase: a local time of day (`HH:MM` or `HH:MM:SS`) in "
        "`timezone` one of its fires falls on (every 15 min starting 00:05).",
    )
    anchor: AwareDateTime | None = Field(
        default=None, description="An interval's phase: an instant one of its fires falls on."
    )
    timezone: ZoneName = Field(
        default=_DEFAULT["timezone"],
        examples=["Europe/London"],
        description="An IANA time zone: the cron's wall clock (and `starting`'s).",
    )
    start_at: AwareDateTime | None = Field(default=None, description="No fire before (inclusive).")
    end_at: AwareDateTime | None = Field(default=None, description="No fire after (inclusive).")
    max_runs: IntegerOrNone = Field(
        default=None, ge=1, le=MAX_RUNS, description="Finished after this many fires."
    )
    gap: GapPolicy = Field(
        default=_DEFAULT["gap"],
        description="A local time that does not exist (spring forward): `shift` fires the "
        "gap's length later, `skip` does not fire.",
    )
    fold: FoldPolicy = Field(
        default=_DEFAULT["fold"],
        description="A local time that happens twice (fall back): fire at the `first`, the "
        "`last` or `both`.",
    )
    catchup_window_seconds: Integer = Field(
        default=_DEFAULT["catchup_window_seconds"],
        ge=1,
        le=MAX_WINDOW_SECONDS,
        description="A fire at most this late is made; a later one was missed (`on_missed`).",
    )
    on_missed: OnMissed = Field(
        default=_DEFAULT["on_missed"],
        description="Missed fires (workers down, schedule paused): `skip` them, fire the "
        "`latest` once, or `all` (the newest `max_catchup`, at `catchup_rate_per_second`).",
    )
    max_catchup: Integer = Field(default=_DEFAULT["max_catchup"], ge=1, le=MAX_CATCHUP)
    catchup_rate_per_second: Number = Field(
        default=_DEFAULT["catchup_rate_per_second"], gt=0, le=MAX_RATE_PER_SECOND
    )
    overlap: OverlapPolicy = Field(
        default=_DEFAULT["overlap"],
        description="When the previous fire's call is not yet terminal: `skip` this fire, "
        "`buffer_one` or `buffer_all` until it is, `cancel_other` it, or `allow_all`.",
    )
    jitter_seconds: Number = Field(
        default=_DEFAULT["jitter_seconds"],
        ge=0,
        le=MAX_JITTER_SECONDS,
        description="Each fire's call is due up to this much after its nominal time "
        "(deterministic: the same for a nominal time whoever computes it).",
    )
    pause_after_failures: IntegerOrNone = Field(
        default=None,
        ge=1,
        le=MAX_PAUSE_AFTER_FAILURES,
        description="Pause the schedule after this many failed fires in a row.",
    )

    def to_domain(self) -> ScheduleSpec:
        """The domain's spec (its checks raise ``InvalidRequestError`` naming the field)."""
        given = self.model_dump(exclude_unset=True)
        return ScheduleSpec.from_dict({k: v for k, v in given.items() if v is not None})


class ScheduleRequestCreate(RequestCreate):
    """The request each fire makes, as a call's (`RequestCreate`); unknown fields refused."""

    model_config = ConfigDict(extra="forbid")


class ScheduleRetryPolicyCreate(RetryPolicyCreate):
    model_config = ConfigDict(extra="forbid")


class ScheduleCallCreate(BaseModel):
    """What each fire submits: a service call with this request, retry policy and tags."""

    model_config = ConfigDict(extra="forbid")

    request: ScheduleRequestCreate
    retry_policy: ScheduleRetryPolicyCreate | None = Field(
        default=None,
        description="Fields left out take the tenant's default policy as it is when the "
        "schedule is created or its call changed.",
    )
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)


class ScheduleWorkflowCreate(BaseModel):
    """What each fire starts instead of a call: a workflow run of this definition (inline,
    as ``POST /v1/workflows/runs`` takes it) with this input."""

    model_config = ConfigDict(extra="forbid")

    definition: dict[str, Any] = Field(
        examples=[{"name": "nightly", "steps": [
            {"id": "export", "request": {"method": "POST", "url": "https://a.example/export"}},
            {"id": "notify", "needs": ["export"],
             "request": {"method": "POST", "url": "https://b.example/hook"}},
        ]}],
        description="The workflow definition (docs/workflows.md), checked whole by the "
        "domain: a refusal is a 422 naming the field (`workflow.definition.steps[a].needs`).",
    )
    input: dict[str, Any] | None = Field(
        default=None, description="Each run's input, laid over the definition's `input`."
    )


ScheduleName = Annotated[SafeText, Field(min_length=1, max_length=MAX_NAME_LENGTH)]
# exactly one of ``call`` and ``workflow`` (checked by the route: a 422 naming the field)
_CALL_OR_WORKFLOW: dict[str, Any] = {
    "oneOf": [{"required": ["call"]}, {"required": ["workflow"]}]
}


class ScheduleCreate(BaseModel):
    """A schedule: its name, its spec, and what each fire submits, exactly one of a `call`
    and a `workflow` run."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_CALL_OR_WORKFLOW)

    name: ScheduleName = Field(examples=["nightly-report"])
    spec: ScheduleSpecCreate
    call: ScheduleCallCreate | None = Field(
        default=None, description="Each fire submits this service call."
    )
    workflow: ScheduleWorkflowCreate | None = Field(
        default=None, description="Each fire starts a run of this workflow instead."
    )


class ScheduleUpdate(BaseModel):
    """Any of name, spec and call (or workflow: at most one of the two); each given replaces
    the one in force (a spec whole: its fields left out take their defaults), from now on."""

    model_config = ConfigDict(extra="forbid")

    name: ScheduleName | None = None
    spec: ScheduleSpecCreate | None = None
    call: ScheduleCallCreate | None = None
    workflow: ScheduleWorkflowCreate | None = None


class SchedulePreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: ScheduleSpecCreate
    count: Integer = Field(default=10, ge=1, le=MAX_PREVIEW)
    after: AwareDateTime | None = Field(
        default=None, description="The times after this one (default: now)."
    )

    @field_validator("after")
    @classmethod
    def _after_in_range(cls, value: datetime | None) -> datetime | None:
        return in_range(value)


class BackfillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: AwareDateTime = Field(description="The first nominal time to consider (inclusive).")
    end: AwareDateTime = Field(description="The last (inclusive); not before `start`.")
    dry_run: StrictBool = Field(
        default=False, description="Only say what would be fired, skipped or buffered."
    )

    @field_validator("start", "end")
    @classmethod
    def _in_range(cls, value: datetime) -> datetime:
        return in_range(value) or value


# -- answers ---------------------------------------------------------------------------------


class ScheduleSpecPublic(BaseModel):
    cron: str | None
    interval_seconds: int | None
    starting: str | None
    anchor: datetime | None
    timezone: str
    start_at: datetime | None
    end_at: datetime | None
    max_runs: int | None
    gap: str
    fold: str
    catchup_window_seconds: int
    on_missed: str
    max_catchup: int
    catchup_rate_per_second: float
    overlap: str
    jitter_seconds: float
    pause_after_failures: int | None


class ScheduleCallPublic(BaseModel):
    request: RequestPublic = Field(description="Secret header values `[REDACTED]`.")
    retry_policy: dict[str, Any] | None
    tags: list[str]


class ScheduleWorkflowPublic(BaseModel):
    definition: dict[str, Any] = Field(description="Secret header values `[REDACTED]`.")
    input: dict[str, Any]


class ScheduleCounts(BaseModel):
    runs: int = Field(description="Fires that count towards `max_runs` (not backfills).")
    fired: int
    triggered: int
    skipped: int
    missed: int
    succeeded: int
    failed: int
    cancelled: int


class SchedulePublic(BaseModel):
    id: UUID
    tenant_id: str
    name: str
    status: str = Field(description="`active`, `paused`, `finished` or `deleted`.")
    pause_reason: str | None = Field(description="`client`, or `failures`.")
    call: ScheduleCallPublic | None = Field(description="What each fire submits (or null).")
    workflow: ScheduleWorkflowPublic | None = Field(
        description="What each fire starts instead of a call: a workflow run (or null)."
    )
    spec: ScheduleSpecPublic
    next_fire_at: datetime | None = Field(description="The next nominal fire time.")
    last_fired_nominal: datetime | None = Field(
        description="The nominal time of the last fire."
    )
    last_triggered_at: datetime | None = Field(
        description="When it was last triggered by hand (`POST .../trigger`)."
    )
    counts: ScheduleCounts
    consecutive_failures: int
    running: int = Field(description="Fired or triggered calls (or runs) not yet terminal.")
    buffered: int = Field(description="Fires waiting for the one running (overlap buffer).")
    created_at: datetime
    updated_at: datetime
    version: int


class FireTime(BaseModel):
    nominal: datetime = Field(description="The nominal time (UTC): the fire's identity.")
    local: LocalTime = Field(
        description="The wall time the spec matched in its zone (no offset); for a shifted "
        "gap time one the clock never showed."
    )
    zoned: datetime = Field(description="The nominal time on the zone's clock, with its offset.")
    dst_note: DstNote | None = Field(
        description="`gap_shifted`, `gap_skipped` (no fire), `fold_first`, `fold_second`."
    )
    fires: bool = Field(description="False for a wall time that did not exist (gap=skip).")


class FirePreview(BaseModel):
    timezone: str
    tzdata: str = Field(description="The IANA tz database release the times come from.")
    items: list[FireTime]


class FiredCall(BaseModel):
    id: UUID = Field(description="The service call: `GET /v1/service-calls/{id}`.")
    nominal: datetime
    due_at: datetime
    idempotency_key: str = Field(
        examples=["sched:<schedule id>:2030-01-01T00:00:00Z"],
        description="`sched:<schedule id>:<nominal UTC time>` (a trigger: "
        "`sched:<schedule id>:trigger:<id>`).",
    )
    status: str = Field(description="The call's status.")


class FiredRun(BaseModel):
    id: UUID = Field(description="The workflow run: `GET /v1/workflows/runs/{id}`.")
    nominal: datetime
    idempotency_key: str = Field(description="As a fired call's.")
    status: str = Field(description="The run's status.")


class TriggerResult(BaseModel):
    call: FiredCall | None = Field(description="The call fired (a call schedule's).")
    run: FiredRun | None = Field(
        default=None, description="The workflow run started (a workflow schedule's)."
    )
    schedule: SchedulePublic


class BackfillAction(BaseModel):
    nominal: datetime
    local: LocalTime = Field(description="The wall time the spec matched.")
    dst_note: DstNote | None
    action: Literal["fire", "skip", "buffer"]
    due_at: datetime | None = Field(description="A fire's: when its call is due.")
    reason: str | None = Field(description="A skip's: `overlap` or `dst_gap`.")
    call_id: UUID | None = Field(description="Not a dry run: the call fired.")
    run_id: UUID | None = Field(
        default=None, description="Not a dry run: the workflow run started."
    )


class BackfillResult(BaseModel):
    dry_run: bool
    items: list[BackfillAction] = Field(
        description="Each nominal time in the range not fired before, and what the plan does."
    )
    more: bool = Field(
        description="More nominal times are in the range than one backfill takes: backfill "
        "again from after the last one here."
    )
    calls: list[FiredCall] = Field(description="Not a dry run: the calls fired.")
    runs: list[FiredRun] = Field(
        default_factory=list, description="Not a dry run: the workflow runs started."
    )
    schedule: SchedulePublic


class ScheduleFire(BaseModel):
    call_id: UUID | None = Field(description="The call fired (null: it started a run).")
    kind: Literal["scheduled", "catch_up", "buffered", "backfill", "trigger"]
    nominal: datetime = Field(description="Its nominal time (a trigger's: when triggered).")
    due_at: datetime = Field(description="When its call was due.")
    fired_at: datetime = Field(description="When the fire was recorded.")
    idempotency_key: str
    local: LocalTime | None = Field(description="The wall time the spec matched.")
    dst_note: DstNote | None
    call_status: str | None = Field(description="The call's status now.")
    run_id: UUID | None = Field(
        default=None, description="The workflow run it started: `GET /v1/workflows/runs/{id}`."
    )
    run_status: str | None = Field(default=None, description="The run's status now.")
    version: int = Field(description="The schedule's version the fire made.")


class ScheduleFirePage(BaseModel):
    items: list[ScheduleFire] = Field(description="Newest first.")
    next_cursor: int | None = Field(description="Pass as `cursor` for older fires.")
