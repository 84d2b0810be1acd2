"""Schedules fire through the real pipeline: each nominal time once, on time, as a call to a
real local server; overlap, missed fires, pause and trigger as the spec says."""

import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from application.outbox import SCHEDULE
from application.schedules import CreateSchedule
from domain.schedule import Schedule
from domain.schedule_spec import ScheduleSpec
from domain.service_call import Status
from harness.target_server import ReceivedRequest, TargetServer
from infrastructure.container import Container
from tests.support.schedule_events import recorded as _events
from tests.support.waiting import wait_until

TENANT = "t-sched"


def _create(container: Container, url: str, **spec: Any) -> Schedule:
    values = {"interval_seconds": 1, **spec}
    return container.schedules.create(
        CreateSchedule(
            TENANT,
            "every-second",
            {"request": {"method": "POST", "url": url, "body": "{}"}},
            ScheduleSpec.from_dict(values),
        )
    ).schedule


def _latest(container: Container, schedule: Schedule) -> Schedule:
    return container.schedules.get(TENANT, schedule.id)


def test_each_nominal_time_fires_once_on_time_as_a_call_with_its_key(
    container: Container,
) -> None:
    with TargetServer() as target:
        container.start_workers()
        schedule = _create(container, f"{target.url}/ok")
        requests = target.wait_for(4, path="/ok", timeout=10)
        wait_until(lambda: _latest(container, schedule).succeeded >= 4, timeout=10)

    fired = _events(container, schedule, "Fired")
    nominal = [e.nominal for e in fired]
    assert nominal == sorted(set(nominal))  # once each, in order
    assert all((b - a).total_seconds() == 1 for a, b in itertools.pairwise(nominal))
    for event, request in zip(fired, requests, strict=False):
        call = container.service_calls.get_call(TENANT, event.call_id)
        assert call.idempotency_key == f"sched:{schedule.id}:{_utc(event.nominal)}"
        assert call.origin == f"schedule:{schedule.id}"
        assert call.due_at == event.actual  # the nominal time, or when a late look planned it
        assert event.nominal <= event.actual < event.nominal + timedelta(seconds=0.5)
        assert event.nominal.timestamp() <= request.received_at < event.nominal.timestamp() + 0.5
    assert _latest(container, schedule).consecutive_failures == 0


def test_two_workers_never_fire_a_nominal_time_twice(
    container: Container, settings: Any
) -> None:
    other = Container.build(settings)
    try:
        with TargetServer() as target:
            container.start_workers()
            other.start_workers()
            schedules = [_create(container, f"{target.url}/ok/{i}") for i in range(5)]
            time.sleep(3.5)
            for schedule in schedules:
                container.schedules.pause(TENANT, schedule.id)
            wait_until(lambda: all(not _latest(container, s).in_flight for s in schedules))
        for schedule in schedules:
            fired = _events(container, schedule, "Fired")
            keys = [
                container.service_calls.get_call(TENANT, e.call_id).idempotency_key for e in fired
            ]
            assert len(keys) == len(set(keys)) >= 2
            path = f"/ok/{schedules.index(schedule)}"
            assert len(target.requests_for(path)) == len(fired)
    finally:
        other.close()


def _overlapping(requests: list[ReceivedRequest], seconds: float) -> bool:
    starts = sorted(r.received_at for r in requests)
    return any(b - a < seconds - 0.2 for a, b in itertools.pairwise(starts))


@pytest.mark.parametrize("policy", ["skip", "buffer_one", "buffer_all", "cancel_other",
                                    "allow_all"])
def test_overlap_policies_with_a_slow_target(container: Container, policy: str) -> None:
    with TargetServer() as target:
        container.start_workers()
        schedule = _create(container, f"{target.url}/slow/2.5", overlap=policy)
        time.sleep(5.2)
        container.schedules.pause(TENANT, schedule.id)
        requests = target.requests_for("/slow/2.5")
        latest = _latest(container, schedule)
        skipped = [e.reason for e in _events(container, schedule, "Skipped")]
        buffered = _events(container, schedule, "Buffered")
        fired = _events(container, schedule, "Fired")

    if policy == "allow_all":
        assert len(requests) >= 4
        assert _overlapping(requests, 2.5)
        assert not skipped
        assert not buffered
    elif policy == "skip":
        assert 1 <= len(requests) <= 2
        assert not _overlapping(requests, 2.5)
        assert skipped.count("overlap") >= 2
    elif policy == "buffer_one":
        assert not _overlapping(requests, 2.5)
        assert len(buffered) >= 1
        assert skipped.count("overlap") >= 1
        assert len(latest.buffered) <= 1
    elif policy == "buffer_all":
        assert not _overlapping(requests, 2.5)
        assert len(buffered) >= 3
        assert not skipped
        assert len(latest.buffered) >= 2
    else:  # cancel_other: each fire cancels the call before it (its request still runs)
        assert len(fired) >= 4
        cancelled = [e for e in fired if e.cancelled_call_ids]
        assert len(cancelled) >= 3
        for event in cancelled:
            (previous,) = event.cancelled_call_ids
            call = container.service_calls.get_call(TENANT, previous)
            # cancelled; or (a loaded machine, the schedule not yet told of its outcome) it had
            # already ended when the fire was planned, and there was nothing to cancel
            assert call.status == Status.CANCELLED or (
                call.finished_at is not None and call.finished_at <= event.fired_at
            ), (call.status, call.finished_at, event.fired_at)


def test_cancel_other_cancels_an_older_fire_of_the_same_batch(container: Container) -> None:
    """A schedule handled late plans several fires in one transaction; with cancel_other
    each newer fire cancels the older one's call, submitted in that same transaction: it is
    recorded cancelled, never gets a start message, and its outcome goes back to the
    schedule (issue 18; fixed in 2c267ba)."""
    schedule = _create(container, "http://127.0.0.1:9/never", overlap="cancel_other")
    time.sleep(3.2)  # no worker: about three nominal times go by, all within the window
    claimed = container.outbox.claim(SCHEDULE, 10, container.schedules.lookahead)
    container.schedules.handle(claimed)  # one look, one transaction: several fires

    fired = sorted(_events(container, schedule, "Fired"), key=lambda e: e.nominal)
    assert len(fired) >= 3
    older, newest = fired[:-1], fired[-1]
    for before, after in itertools.pairwise(fired):
        assert after.cancelled_call_ids == [before.call_id]  # each cancels the one before
    for event in older:
        call = container.service_calls.get_call(TENANT, event.call_id)
        assert call.status == Status.CANCELLED
        assert call.execution_id is None  # never started
    assert container.service_calls.get_call(TENANT, newest.call_id).status == Status.SCHEDULED
    with container.outbox.pool.connection() as conn:
        rows = conn.execute("SELECT kind, service_call_id, payload FROM duecall_outbox").fetchall()
    starts = {r["service_call_id"] for r in rows if r["kind"] == "start"}
    assert starts == {newest.call_id}  # only the newest fire's call is to be made
    # each cancelled call's outcome goes back to the schedule, as any cancelled fire's
    outcomes = [r["payload"]["outcome"] for r in rows if "outcome" in r["payload"]]
    assert sorted(o["call_id"] for o in outcomes) == sorted(str(e.call_id) for e in older)
    assert {o["status"] for o in outcomes} == {"cancelled"}
    assert set(_latest(container, schedule).in_flight) == {newest.call_id}


@pytest.mark.parametrize(("on_missed", "expected"), [("all", 2), ("skip", 0)])
def test_missed_fires_while_workers_were_down(
    container: Container, on_missed: str, expected: int
) -> None:
    with TargetServer() as target:
        schedule = _create(
            container, f"{target.url}/ok", on_missed=on_missed, catchup_window_seconds=1,
            max_catchup=2, catchup_rate_per_second=4,
        )
        time.sleep(4.2)  # no worker: about four nominal times go by
        container.start_workers()
        wait_until(lambda: _events(container, schedule, "CaughtUp"), timeout=10)
        time.sleep(0.5)
        container.schedules.pause(TENANT, schedule.id)

    (caught_up,) = _events(container, schedule, "CaughtUp")
    catch_ups = [e for e in _events(container, schedule, "Fired") if e.catch_up]
    assert len(catch_ups) == expected
    assert caught_up.caught_up == expected
    assert caught_up.missed + caught_up.caught_up >= 3  # about four went by, one may be late
    assert _latest(container, schedule).missed == caught_up.missed
    late = sorted(f.actual for f in _late_fires(container, schedule))
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(late)]
    assert all(gap >= 0.25 - 0.001 for gap in gaps)  # the rate cap: 4 per second


def test_latest_makes_one_late_fire_for_the_downtime(container: Container) -> None:
    """Issue 18's downtime case, scaled down (1 s interval, 4 s down): of the times due while
    the workers were down, only the newest is fired, once, soon after they start."""
    with TargetServer() as target:
        schedule = _create(
            container, f"{target.url}/ok", on_missed="latest", catchup_window_seconds=1
        )
        time.sleep(4.2)  # no worker: about four nominal times go by
        restarted = datetime.now(UTC)
        container.start_workers()
        target.wait_for(1, path="/ok", timeout=10)
        time.sleep(2.5)  # regular fires follow
        container.schedules.pause(TENANT, schedule.id)

    fires = sorted(_events(container, schedule, "Fired"), key=lambda f: f.nominal)
    first = fires[0]
    assert first.actual > first.nominal  # late: due while no worker ran
    assert (first.fired_at - restarted).total_seconds() < 5
    assert [f for f in fires if f.nominal <= first.fired_at] == [first]  # once, the newest
    assert len(fires) >= 3  # then regular fires


def _late_fires(container: Container, schedule: Schedule) -> list[Any]:
    """Fires whose call was due after their nominal time (a regular fire's is due at it)."""
    return [f for f in _events(container, schedule, "Fired") if f.actual > f.nominal]


def test_pause_stops_the_fires_and_trigger_fires_now(container: Container) -> None:
    with TargetServer() as target:
        container.start_workers()
        schedule = _create(container, f"{target.url}/ok", on_missed="skip")
        target.wait_for(1, path="/ok", timeout=10)
        container.schedules.pause(TENANT, schedule.id)
        time.sleep(1.5)  # a call planned before the pause may still go
        count = len(target.requests_for("/ok"))
        time.sleep(2.0)
        assert len(target.requests_for("/ok")) == count  # paused: nothing more

        triggered = container.schedules.trigger(TENANT, schedule.id)
        (call,) = triggered.calls
        target.wait_for(count + 1, path="/ok", timeout=10)

    assert call.idempotency_key == f"sched:{schedule.id}:trigger:{call.id}"
    assert _latest(container, schedule).status == "paused"


def _utc(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
