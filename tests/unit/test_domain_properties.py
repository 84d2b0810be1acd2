"""Property tests: any sequence of commands and (possibly stale, duplicated or late) messages
keeps the ServiceCall's invariants, and its recorded events always rebuild the live state."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any, TypeVar, cast
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from domain.errors import InvalidTransitionError
from domain.execution import Execution
from domain.ids import execution_id_for, new_service_call_id
from domain.outcome import AttemptOutcome, AttemptResult, ErrorKind
from domain.request import RequestSpec
from domain.retry_policy import FailReason, Jitter, RetryPolicy, ScheduleReason
from domain.service_call import TERMINAL, ServiceCall, Status
from domain.status import CANCELLABLE, PAUSABLE
from tests.support.domain_events import collect

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
REQUEST = RequestSpec("POST", "https://api.example.com/hooks/1", {"X-A": "1"}, "{}", 10.0)
TERMINAL_EVENTS = frozenset({"Succeeded", "Failed", "Cancelled"})
STATUS_AFTER = {
    "Submitted": Status.SCHEDULED,  # its first attempt
    "Scheduled": Status.SCHEDULED,
    "Started": Status.RUNNING,
    "Succeeded": Status.SUCCEEDED,
    "Failed": Status.FAILED,
    "Cancelled": Status.CANCELLED,
    "Paused": Status.PAUSED,
}  # AttemptFailed, Resumed and RetryRequested are always followed by one of these
NEW_ATTEMPT_REASONS = {ScheduleReason.BACKOFF, ScheduleReason.RETRY_AFTER, ScheduleReason.MANUAL}
SAME_ATTEMPT_REASONS = {ScheduleReason.RESUMED, ScheduleReason.CIRCUIT_OPEN}

# None stands for the call's current attempt, drawn often so that attempts make progress
attempts = st.sampled_from([None, None, None, None, 0, 1, 2, 3, 4, 5, 6])
ticks = st.integers(min_value=0, max_value=90)  # seconds the clock moves before a step
fractions = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
retry_policies = st.builds(
    lambda max_attempts, initial, extra, multiplier, jitter, duration, retry_on: RetryPolicy(
        max_attempts=max_attempts,
        initial_backoff_seconds=initial,
        max_backoff_seconds=initial + extra,
        multiplier=multiplier,
        jitter=jitter,
        max_retry_duration_seconds=duration,
        retry_on=retry_on,
    ),
    max_attempts=st.integers(min_value=1, max_value=6),
    initial=st.integers(min_value=0, max_value=5),
    extra=st.integers(min_value=0, max_value=30),
    multiplier=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
    jitter=st.sampled_from(Jitter),
    duration=st.one_of(st.none(), st.integers(min_value=1, max_value=120)),
    retry_on=st.sampled_from(
        [RetryPolicy().retry_on, ("5xx",), ("503", "timeout"), ("4xx", "lost"), ()]
    ),
)
# (succeeded, status_code, error_kind)
results_of_attempts = st.sampled_from(
    [
        (True, 200, None),
        (True, 204, None),
        (False, 400, "http_error"),
        (False, 404, "http_error"),
        (False, 429, "http_error"),
        (False, 500, "http_error"),
        (False, 503, "http_error"),
        (False, None, "timeout"),
        (False, None, "network"),
        (False, None, "lost"),
        (False, None, "rejected"),
    ]
)


@dataclass(frozen=True)
class Start:
    attempt: int
    at: datetime


@dataclass(frozen=True)
class Outcome:
    outcome: AttemptOutcome
    at: datetime
    random_fraction: float


Message = Start | Outcome


T = TypeVar("T")


def _name(event: ServiceCall.Event) -> str:
    return type(event).__name__


def _scheduled_attempt(event: ServiceCall.Event) -> int:
    """The attempt a Submitted (the first) or a Scheduled event makes due."""
    return 1 if _name(event) == "Submitted" else int(cast(Any, event).attempt)


def _try(command: Callable[[], T]) -> tuple[T | None, InvalidTransitionError | None]:
    """Run a command; a refusal (InvalidTransitionError) is an allowed answer."""
    try:
        return command(), None
    except InvalidTransitionError as refused:
        return None, refused


class ServiceCallMachine(RuleBasedStateMachine):
    """Drives one ServiceCall with commands, starts, outcomes and redeliveries of any earlier
    message, checking each step's result and the whole history's invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.call: ServiceCall
        self.other_call_id: UUID = new_service_call_id()
        self.events: list[ServiceCall.Event] = []
        self.sent: list[Message] = []
        self.now = NOW
        self.checked = 0  # events already seen by the forward-only invariant
        self.previous_status = Status.SCHEDULED

    @initialize(due_offset=st.integers(min_value=0, max_value=30), policy=retry_policies)
    def submit(self, due_offset: int, policy: RetryPolicy) -> None:
        self.call = ServiceCall.submit(
            id=new_service_call_id(),
            tenant_id="tenant-a",
            name="prop",
            request=REQUEST,
            due_at=NOW + timedelta(seconds=due_offset),
            retry_policy=policy,
        )
        self.events = collect(self.call)
        self.previous_status = self.call.status

    # --- helpers ---------------------------------------------------------------------------

    def _tick(self, seconds: int) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def _new_events(self) -> list[ServiceCall.Event]:
        new = collect(self.call)
        self.events.extend(new)
        return new

    def _deliver(self, message: Message) -> None:
        status, attempt, due_at = self.call.status, self.call.attempt, self.call.due_at
        if isinstance(message, Start):
            result = self.call.start(message.attempt, message.at)
            new = self._new_events()
            should_start = (
                status == Status.SCHEDULED and message.attempt == attempt and message.at >= due_at
            )
            if not should_start:
                assert result is None
                assert new == []
            else:
                assert result == execution_id_for(self.call.id, message.attempt)
                assert [_name(e) for e in new] == ["Started"]
                assert cast(Any, new[0]).attempt == message.attempt
        else:
            outcome = message.outcome
            running_execution = str(self.call.execution_id)
            accepted = self.call.record_outcome(outcome, message.at, message.random_fraction)
            new = self._new_events()
            assert accepted == (
                status == Status.RUNNING
                and outcome.attempt == attempt
                and outcome.execution_id == running_execution
            )
            if not accepted:
                assert new == []
            elif outcome.succeeded:
                assert [_name(e) for e in new] == ["Succeeded"]
            else:
                self._check_failure(outcome, message.at, new)
        self.sent.append(message)

    def _check_failure(
        self, outcome: AttemptOutcome, at: datetime, new: list[ServiceCall.Event]
    ) -> None:
        policy = self.call.retry_policy
        names = [_name(e) for e in new]
        attempt_failed, follow_up = cast(list[Any], new)
        assert attempt_failed.attempt == outcome.attempt
        assert attempt_failed.retryable == policy.retries(outcome.error_kind, outcome.status_code)
        if names == ["AttemptFailed", "Scheduled"]:
            assert attempt_failed.retryable
            assert outcome.attempt < policy.max_attempts
            assert follow_up.attempt == outcome.attempt + 1
            assert follow_up.reason in (ScheduleReason.BACKOFF, ScheduleReason.RETRY_AFTER)
            assert 0 <= follow_up.delay_seconds <= policy.max_backoff_seconds
            assert follow_up.due_at == at + timedelta(seconds=follow_up.delay_seconds)
        else:
            assert names == ["AttemptFailed", "Failed"]
            assert follow_up.attempt == outcome.attempt
            if not attempt_failed.retryable:
                assert follow_up.reason == FailReason.NOT_RETRYABLE
            elif outcome.attempt >= policy.max_attempts:
                assert follow_up.reason == FailReason.ATTEMPTS_EXHAUSTED
            else:
                assert follow_up.reason == FailReason.DURATION_EXHAUSTED
                assert policy.max_retry_duration_seconds is not None

    # --- messages --------------------------------------------------------------------------

    @rule(attempt=attempts, tick=ticks)
    def start(self, attempt: int | None, tick: int) -> None:
        at = self._tick(tick)
        self._deliver(Start(self.call.attempt if attempt is None else attempt, at))

    @rule(lateness=st.integers(min_value=0, max_value=5))
    def timer_fires(self, lateness: int) -> None:
        """The timer starts the current attempt when it falls due (the usual path)."""
        self.now = max(self.now, self.call.due_at) + timedelta(seconds=lateness)
        self._deliver(Start(self.call.attempt, self.now))

    @rule(
        attempt=attempts,
        execution=st.sampled_from(["own", "own", "own", "previous", "foreign"]),
        result=results_of_attempts,
        retry_after=st.one_of(st.none(), st.integers(min_value=0, max_value=40)),
        tick=ticks,
        random_fraction=fractions,
    )
    def record_outcome(
        self,
        attempt: int | None,
        execution: str,
        result: tuple[bool, int | None, str | None],
        retry_after: int | None,
        tick: int,
        random_fraction: float,
    ) -> None:
        at = self._tick(tick)
        number = self.call.attempt if attempt is None else attempt
        execution_id = {
            "own": execution_id_for(self.call.id, number),
            "previous": execution_id_for(self.call.id, number - 1),
            "foreign": execution_id_for(self.other_call_id, number),
        }[execution]
        succeeded, status_code, error_kind = result
        outcome = AttemptOutcome(
            execution_id=str(execution_id),
            attempt=number,
            succeeded=succeeded,
            duration_ms=float(tick),
            status_code=status_code,
            error_kind=error_kind,
            message=None if succeeded else f"{error_kind} {status_code}",
            retry_after_seconds=None if succeeded else retry_after,
        )
        self._deliver(Outcome(outcome, at, random_fraction))

    @precondition(lambda self: self.call.status == Status.RUNNING)
    @rule(
        result=results_of_attempts,
        retry_after=st.one_of(st.none(), st.integers(min_value=0, max_value=40)),
        tick=ticks,
        random_fraction=fractions,
    )
    def execution_finishes(
        self,
        result: tuple[bool, int | None, str | None],
        retry_after: int | None,
        tick: int,
        random_fraction: float,
    ) -> None:
        """The running attempt's own outcome arrives (the usual path)."""
        self.record_outcome(None, "own", result, retry_after, tick, random_fraction)

    @rule(
        lateness=st.integers(min_value=0, max_value=5),
        result=results_of_attempts,
        retry_after=st.one_of(st.none(), st.integers(min_value=0, max_value=40)),
        tick=ticks,
        random_fraction=fractions,
    )
    def attempt_runs(
        self,
        lateness: int,
        result: tuple[bool, int | None, str | None],
        retry_after: int | None,
        tick: int,
        random_fraction: float,
    ) -> None:
        """The timer starts the current attempt and its outcome comes back."""
        self.timer_fires(lateness)
        self.record_outcome(None, "own", result, retry_after, tick, random_fraction)

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        """A duplicate or late delivery of an earlier message, at its original time."""
        self._deliver(data.draw(st.sampled_from(self.sent), label="redelivered"))

    # --- commands --------------------------------------------------------------------------

    @rule(
        reason=st.one_of(st.none(), st.just("no longer needed")),
        tick=ticks,
        roll=st.integers(min_value=0, max_value=3),
    )
    def cancel(self, reason: str | None, tick: int, roll: int) -> None:
        if roll:  # cancel a quarter of the times it is drawn, so runs get further
            return
        at = self._tick(tick)
        before = self.call.status
        _, refused = _try(lambda: self.call.cancel(reason, at))
        if refused is not None:
            assert before in TERMINAL
            assert refused.status == before
            assert self._new_events() == []
            return
        assert before in CANCELLABLE
        new = self._new_events()
        assert [_name(e) for e in new] == ["Cancelled"]
        assert cast(Any, new[0]).reason == reason
        assert self.call.finished_at == at

    @rule(tick=ticks)
    def pause(self, tick: int) -> None:
        at = self._tick(tick)
        before = self.call.status
        paused, refused = _try(lambda: self.call.pause(at))
        if refused is not None:
            assert before not in PAUSABLE
            assert before != Status.PAUSED
            assert refused.status == before
            assert self._new_events() == []
            return
        new = self._new_events()
        assert paused == (before != Status.PAUSED)
        assert [_name(e) for e in new] == (["Paused"] if paused else [])

    @rule(tick=ticks)
    def resume(self, tick: int) -> None:
        at = self._tick(tick)
        before, attempt, due_at = self.call.status, self.call.attempt, self.call.due_at
        resumed, refused = _try(lambda: self.call.resume(at))
        if refused is not None:
            assert before in TERMINAL
            assert refused.status == before
            assert self._new_events() == []
            return
        new = self._new_events()
        assert resumed == (before == Status.PAUSED)
        if not resumed:
            assert new == []
            return
        assert [_name(e) for e in new] == ["Resumed", "Scheduled"]
        scheduled = cast(Any, new[1])
        assert scheduled.attempt == attempt
        assert scheduled.reason == ScheduleReason.RESUMED
        assert scheduled.due_at == max(due_at, at)

    @rule(due_offset=st.one_of(st.none(), st.integers(min_value=-60, max_value=60)), tick=ticks)
    def retry(self, due_offset: int | None, tick: int) -> None:
        at = self._tick(tick)
        before, attempt = self.call.status, self.call.attempt
        due = None if due_offset is None else at + timedelta(seconds=due_offset)
        _, refused = _try(lambda: self.call.retry(at, due))
        if refused is not None:
            assert before != Status.FAILED
            assert refused.status == before
            assert self._new_events() == []
            return
        new = self._new_events()
        assert before == Status.FAILED
        assert [_name(e) for e in new] == ["RetryRequested", "Scheduled"]
        scheduled = cast(Any, new[1])
        assert scheduled.attempt == attempt + 1
        assert scheduled.reason == ScheduleReason.MANUAL
        assert scheduled.due_at == max(due or at, at)

    @rule(attempt=attempts, hold_for=st.integers(min_value=0, max_value=60), tick=ticks)
    def hold(self, attempt: int | None, hold_for: int, tick: int) -> None:
        at = self._tick(tick)
        before, current = self.call.status, self.call.attempt
        number = current if attempt is None else attempt
        held = self.call.hold(number, at + timedelta(seconds=hold_for))
        new = self._new_events()
        assert held == (before == Status.SCHEDULED and number == current)
        if not held:
            assert new == []
            return
        assert [_name(e) for e in new] == ["Scheduled"]
        assert cast(Any, new[0]).attempt == current
        assert cast(Any, new[0]).reason == ScheduleReason.CIRCUIT_OPEN

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def forward_only(self) -> None:
        """Nothing leaves a terminal state except a manual retry of a Failed call."""
        new = [_name(e) for e in self.events[self.checked :]]
        if self.previous_status in TERMINAL and new:
            assert self.previous_status == Status.FAILED, new
            assert new[0] == "RetryRequested", new
        if self.previous_status in TERMINAL and self.call.status != self.previous_status:
            assert "RetryRequested" in new
        names = [_name(e) for e in self.events]
        for i, name in enumerate(names[:-1]):
            if name in TERMINAL_EVENTS:
                assert name == "Failed", names
                assert names[i + 1] == "RetryRequested", names
        self.checked = len(self.events)
        self.previous_status = self.call.status

    @invariant()
    def exactly_one_terminal_outcome_per_attempt(self) -> None:
        names = [_name(e) for e in self.events]
        attempt = 0
        finished: dict[int, str] = {}  # attempt -> its terminal event
        outcome_of: dict[int, str] = {}  # attempt -> Succeeded / AttemptFailed
        last_terminal: str | None = None
        for e, name in zip(self.events, names, strict=True):
            if name in ("Submitted", "Scheduled"):
                attempt = _scheduled_attempt(e)
            if name in ("Succeeded", "AttemptFailed"):
                assert cast(Any, e).attempt == attempt
                assert attempt not in outcome_of, names
                outcome_of[attempt] = name
            if name == "Failed":
                assert cast(Any, e).attempt == attempt
                assert outcome_of.get(attempt) == "AttemptFailed"
            if name in TERMINAL_EVENTS:
                assert attempt not in finished, names
                assert last_terminal is None, names  # no RetryRequested since the last one
                finished[attempt] = name
                last_terminal = name
            if name == "RetryRequested":
                assert last_terminal == "Failed", names
                last_terminal = None
        assert len(finished) == names.count("RetryRequested") + (1 if self.call.is_terminal else 0)
        if self.call.is_terminal:
            assert STATUS_AFTER[cast(str, last_terminal)] == self.call.status

    @invariant()
    def started_attempts_strictly_increase(self) -> None:
        started = [cast(Any, e).attempt for e in self.events if _name(e) == "Started"]
        assert all(a < b for a, b in itertools.pairwise(started)), started

    @invariant()
    def every_started_is_for_the_latest_scheduled_attempt_once_due(self) -> None:
        latest: Any = None
        for e in self.events:
            name = _name(e)
            if name in ("Submitted", "Scheduled"):
                latest = e
            elif name == "Started":
                assert latest is not None
                assert cast(Any, e).attempt == _scheduled_attempt(latest)
                assert cast(Any, e).started_at >= cast(Any, latest).due_at
                latest = None  # a second Started needs a new Scheduled
            elif name in STATUS_AFTER:
                latest = None  # Paused / terminal: the schedule no longer stands

    @invariant()
    def scheduled_attempts_only_move_forward_by_one(self) -> None:
        previous = 1  # Submitted: the first attempt
        for e in self.events:
            if _name(e) == "Scheduled":
                scheduled = cast(Any, e)
                if scheduled.reason in SAME_ATTEMPT_REASONS:
                    assert scheduled.attempt == previous
                else:
                    assert scheduled.reason in NEW_ATTEMPT_REASONS, scheduled.reason
                    assert scheduled.attempt == previous + 1
                previous = scheduled.attempt

    @invariant()
    def status_is_the_one_the_last_event_implies(self) -> None:
        implied = [STATUS_AFTER[_name(e)] for e in self.events if _name(e) in STATUS_AFTER]
        assert implied[-1] == self.call.status
        assert (self.call.finished_at is not None) == self.call.is_terminal

    @invariant()
    def versions_are_contiguous(self) -> None:
        versions = [e.originator_version for e in self.events]
        assert versions == list(range(1, len(self.events) + 1))
        assert self.call.version == len(self.events)

    @invariant()
    def state_rebuilt_from_the_events_equals_the_live_state(self) -> None:
        rebuilt = cast(ServiceCall, reduce(lambda a, e: e.mutate(a), self.events, None))
        assert rebuilt.describe() == self.call.describe()
        assert rebuilt.execution_id == self.call.execution_id
        assert rebuilt.retry_window_start == self.call.retry_window_start


ServiceCallMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=25, deadline=None, database=None
)
TestServiceCallInvariants = ServiceCallMachine.TestCase


results = st.builds(
    AttemptResult,
    duration_ms=st.floats(min_value=0, max_value=60_000, allow_nan=False),
    status_code=st.one_of(st.none(), st.integers(min_value=100, max_value=599)),
    error_kind=st.one_of(st.none(), st.sampled_from(ErrorKind)),
)


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(results, min_size=1, max_size=5))
def test_an_execution_records_exactly_one_terminal_event_whatever_it_is_told(
    finishes: list[AttemptResult],
) -> None:
    call_id = new_service_call_id()
    execution = Execution.begin(
        id=execution_id_for(call_id, 1),
        tenant_id="t",
        service_call_id=call_id,
        attempt=1,
        request=REQUEST,
        now=NOW,
    )
    returned = [execution.finish(result, NOW + timedelta(seconds=1)) for result in finishes]
    assert returned[0] is not None
    assert returned[0].succeeded == finishes[0].succeeded
    assert all(r is None for r in returned[1:])
    events = execution.collect_events()
    assert [type(e).__name__ for e in events][1:] in (["Succeeded"], ["Failed"])
    rebuilt = cast(Execution, reduce(lambda a, e: e.mutate(a), events, None))
    assert rebuilt.describe() == execution.describe()
