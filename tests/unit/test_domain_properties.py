"""Property tests: any sequence of (possibly stale or duplicated) messages keeps the
ServiceCall's invariants, and its recorded events always rebuild the live state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from domain.execution import Execution
from domain.ids import execution_id_for, new_service_call_id
from domain.outcome import AttemptOutcome, AttemptResult, ErrorKind
from domain.request import RequestSpec
from domain.service_call import TERMINAL, ServiceCall

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
REQUEST = RequestSpec("POST", "https://api.example.com/hooks/1", {"X-A": "1"}, "{}", 10.0)
TERMINAL_EVENTS = frozenset({"Succeeded", "Failed"})

attempts = st.integers(min_value=0, max_value=3)
offsets = st.integers(min_value=-5, max_value=20)  # seconds after NOW


@dataclass(frozen=True)
class Start:
    attempt: int
    at: datetime


@dataclass(frozen=True)
class Outcome:
    outcome: AttemptOutcome
    at: datetime


Message = Start | Outcome


class ServiceCallMachine(RuleBasedStateMachine):
    """Feeds a ServiceCall starts, outcomes and redeliveries of earlier messages."""

    def __init__(self) -> None:
        super().__init__()
        self.call: ServiceCall
        self.events: list[ServiceCall.Event] = []
        self.sent: list[Message] = []
        self.previous_status: str | None = None

    @initialize(due_offset=st.integers(min_value=0, max_value=10))
    def submit(self, due_offset: int) -> None:
        self.call = ServiceCall.submit(
            id=new_service_call_id(),
            tenant_id="tenant-a",
            name="prop",
            request=REQUEST,
            due_at=NOW + timedelta(seconds=due_offset),
        )
        self.events = self.call.collect_events()
        self.previous_status = self.call.status

    def _deliver(self, message: Message) -> None:
        was_running_attempt = (self.call.status == "running", self.call.attempt)
        if isinstance(message, Start):
            result = self.call.start(message.attempt, message.at)
            new = self.call.collect_events()
            if result is None:
                assert new == []
            else:
                assert result == execution_id_for(self.call.id, message.attempt)
                assert [type(e).__name__ for e in new] == ["Started"]
                assert cast(Any, new[0]).attempt == message.attempt
        else:
            accepted = self.call.record_outcome(message.outcome, message.at)
            new = self.call.collect_events()
            assert accepted == (was_running_attempt == (True, message.outcome.attempt))
            if accepted:
                expected = "Succeeded" if message.outcome.succeeded else "Failed"
                assert [type(e).__name__ for e in new] == [expected]
            else:
                assert new == []
        self.events.extend(new)
        self.sent.append(message)

    @rule(attempt=attempts, offset=offsets)
    def start(self, attempt: int, offset: int) -> None:
        self._deliver(Start(attempt, NOW + timedelta(seconds=offset)))

    @rule(
        attempt=attempts,
        succeeded=st.booleans(),
        status_code=st.sampled_from([200, 204, 404, 500, 503, None]),
        offset=offsets,
    )
    def record_outcome(
        self, attempt: int, succeeded: bool, status_code: int | None, offset: int
    ) -> None:
        outcome = AttemptOutcome(
            execution_id=str(execution_id_for(self.call.id, attempt)),
            attempt=attempt,
            succeeded=succeeded,
            duration_ms=float(offset % 7),
            status_code=status_code,
            error_kind=None if succeeded else "http_error",
            message=None if succeeded else f"HTTP {status_code}",
        )
        self._deliver(Outcome(outcome, NOW + timedelta(seconds=offset)))

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        self._deliver(data.draw(st.sampled_from(self.sent), label="duplicate"))

    @invariant()
    def at_most_one_terminal_event_and_nothing_after_it(self) -> None:
        names = [type(e).__name__ for e in self.events]
        terminal = [i for i, name in enumerate(names) if name in TERMINAL_EVENTS]
        assert len(terminal) <= 1, names
        if terminal:
            assert terminal[0] == len(names) - 1, names
            assert self.call.is_terminal

    @invariant()
    def status_never_leaves_a_terminal_state(self) -> None:
        if self.previous_status in TERMINAL:
            assert self.call.status == self.previous_status
        self.previous_status = self.call.status

    @invariant()
    def started_attempts_never_decrease(self) -> None:
        started = [cast(Any, e).attempt for e in self.events if type(e).__name__ == "Started"]
        assert started == sorted(started)

    @invariant()
    def every_started_is_preceded_by_a_scheduled_for_the_same_attempt(self) -> None:
        scheduled: set[int] = set()
        for e in self.events:
            name = type(e).__name__
            if name == "Scheduled":
                scheduled.add(cast(Any, e).attempt)
            elif name == "Started":
                assert cast(Any, e).attempt in scheduled

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


ServiceCallMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=15, deadline=None, database=None
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
