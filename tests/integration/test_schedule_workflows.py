"""Schedules whose fires start workflow runs, through the real pipeline: a run per nominal
time (its key ``sched:<id>:<nominal>``, origin ``schedule:<id>``, its steps real calls to a
local server), the overlap rules counting a run until it ends, cancel_other cancelling it,
and a failed run counting toward ``pause_after_failures``."""

import itertools
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from application.outbox import SCHEDULE
from application.schedule_fires import fires_of
from application.schedules import CreateSchedule
from domain.schedule import Schedule
from domain.schedule_spec import ScheduleSpec
from domain.service_call import Status
from domain.workflow_run import RunStatus, WorkflowRun
from harness.target_server import TargetServer
from infrastructure.container import Container
from tests.support.schedule_events import recorded as _events
from tests.support.waiting import wait_until

TENANT = "t-sched-wf"


def _definition(url: str, first: str = "/ok", *, attempts: int = 3) -> dict[str, Any]:
    """Two steps: ``first``, then ``/echo`` with an input value and the first's status."""
    return {
        "name": "nightly",
        "input": {"region": "eu"},
        "steps": [
            {"id": "a", "request": {"method": "GET", "url": f"{url}{first}"},
             "retry_policy": {"max_attempts": attempts, "initial_backoff_seconds": 0.1}},
            {"id": "b", "needs": ["a"],
             "request": {"method": "POST", "url": f"{url}/echo",
                         "body": "{{ input.region }}-{{ steps.a.status }}"}},
        ],
    }


def _create(container: Container, definition: dict[str, Any], **spec: Any) -> Schedule:
    template = {"workflow": {"definition": definition, "input": {"region": "us"}}}
    values = {"interval_seconds": 1, **spec}
    return container.schedules.create(
        CreateSchedule(TENANT, "runs-every-second", template, ScheduleSpec.from_dict(values))
    ).schedule


def _latest(container: Container, schedule: Schedule) -> Schedule:
    return container.schedules.get(TENANT, schedule.id)


def _run(container: Container, run_id: UUID) -> WorkflowRun:
    return container.workflows.get(TENANT, run_id)


def _utc(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_each_nominal_time_starts_one_run_whose_steps_are_real_calls(
    container: Container,
) -> None:
    with TargetServer() as target:
        container.start_workers()
        schedule = _create(container, _definition(target.url))
        wait_until(lambda: _latest(container, schedule).succeeded >= 3, timeout=15)
        container.schedules.pause(TENANT, schedule.id)
        wait_until(lambda: not _latest(container, schedule).in_flight, timeout=10)
        echoes = target.requests_for("/echo")

    fired = _events(container, schedule, "Fired")
    assert all(e.workflow_run for e in fired)
    nominal = [e.nominal for e in fired]
    assert nominal == sorted(set(nominal))  # once each, in order
    assert all((b - a).total_seconds() == 1 for a, b in itertools.pairwise(nominal))
    for event in fired:
        run = _run(container, event.call_id)  # the fire's id is its run's
        assert run.idempotency_key == f"sched:{schedule.id}:{_utc(event.nominal)}"
        assert run.origin == f"schedule:{schedule.id}"
        assert run.status == RunStatus.SUCCEEDED
        assert run.input == {"region": "us"}  # the template's input over the definition's
        first = run.steps["a"].call_id
        assert first is not None
        # due at the fire's actual time: the nominal one, or when a late look planned it
        assert container.service_calls.get_call(TENANT, first).due_at == event.actual
        assert (event.actual - event.nominal).total_seconds() < 0.5
    assert len(echoes) == len(fired)
    assert {r.body for r in echoes} == {b"us-200"}
    latest = _latest(container, schedule)
    assert latest.succeeded == len(fired)
    assert latest.failed == latest.consecutive_failures == 0
    # the fires listing names the runs, with their statuses
    page = fires_of(container.service_calls, latest, 50)
    assert {f.run_id for f in page.items} == {e.call_id for e in fired}
    assert {f.run_status for f in page.items} == {"succeeded"}
    assert all(f.call_id is None for f in page.items)


@pytest.mark.parametrize("policy", ["skip", "buffer_one", "buffer_all", "allow_all"])
def test_overlap_waits_for_the_run_not_its_first_step(container: Container, policy: str) -> None:
    """The run's slow second step keeps it running: the fires meanwhile are skipped, or wait
    in the buffer, or (allow_all) start runs side by side."""
    with TargetServer() as target:
        container.start_workers()
        definition = _definition(target.url)
        definition["steps"][1]["request"] = {"method": "GET", "url": f"{target.url}/slow/2.5"}
        schedule = _create(container, definition, overlap=policy)
        time.sleep(5.2)
        container.schedules.pause(TENANT, schedule.id)
        slow = sorted(r.received_at for r in target.requests_for("/slow/2.5"))

    skipped = [e.reason for e in _events(container, schedule, "Skipped")]
    buffered = _events(container, schedule, "Buffered")
    apart = all(b - a >= 2.3 for a, b in itertools.pairwise(slow))  # never two runs at once
    if policy == "allow_all":
        assert len(slow) >= 3
        assert not apart
        assert not skipped
        assert not buffered
        return
    assert 1 <= len(slow) <= 2
    assert apart
    if policy == "skip":
        assert skipped.count("overlap") >= 2
        assert not buffered
    elif policy == "buffer_one":
        assert len(buffered) >= 1
        assert skipped.count("overlap") >= 1
        assert len(_latest(container, schedule).buffered) <= 1
    else:
        assert len(buffered) >= 3
        assert not skipped


def test_cancel_other_cancels_the_running_run_and_its_step(container: Container) -> None:
    with TargetServer() as target:
        container.start_workers()
        definition = _definition(target.url, "/slow/2.5")
        schedule = _create(container, definition, overlap="cancel_other")
        time.sleep(3.6)
        container.schedules.pause(TENANT, schedule.id)

    fired = _events(container, schedule, "Fired")
    replacing = [e for e in fired if e.cancelled_call_ids]
    assert len(replacing) >= 2
    for event in replacing:
        (previous,) = event.cancelled_call_ids
        run = _run(container, previous)
        # cancelled; or (a loaded machine) it had already ended when the fire was planned
        assert run.status == RunStatus.CANCELLED or (
            run.finished_at is not None and run.finished_at <= event.fired_at
        ), (run.status, run.finished_at, event.fired_at)
        if run.status == RunStatus.CANCELLED:
            assert run.cancel_reason is not None
            assert run.cancel_reason.startswith("overlap")
            call_id = run.steps["a"].call_id
            if call_id is not None:  # its running step's call went with it
                call = container.service_calls.get_call(TENANT, call_id)
                assert call.status in (Status.CANCELLED, Status.SUCCEEDED)


def test_a_batch_of_late_fires_cancels_its_older_runs_before_they_start(
    container: Container,
) -> None:
    """cancel_other within one transaction (several late fires planned at one look): the
    older runs are cancelled as they are submitted; no step of theirs is ordered."""
    schedule = _create(container, _definition("http://127.0.0.1:9"), overlap="cancel_other")
    time.sleep(3.2)  # no worker: about three nominal times go by
    container.schedules.handle(container.outbox.claim(SCHEDULE, 10, 1.0))

    fired = sorted(_events(container, schedule, "Fired"), key=lambda e: e.nominal)
    assert len(fired) >= 3
    for event in fired[:-1]:
        run = _run(container, event.call_id)
        assert run.status == RunStatus.CANCELLED
        assert run.steps["a"].call_id is None  # never started a step
    newest = _run(container, fired[-1].call_id)
    assert newest.status == RunStatus.RUNNING
    assert set(_latest(container, schedule).in_flight) == {newest.id}


def test_failed_runs_count_toward_pause_after_failures(container: Container) -> None:
    with TargetServer() as target:
        container.start_workers()
        definition = _definition(target.url, "/status/500", attempts=1)
        schedule = _create(container, definition, pause_after_failures=2)
        wait_until(lambda: _latest(container, schedule).status == "paused", timeout=15)
        wait_until(lambda: not _latest(container, schedule).in_flight, timeout=10)

    latest = _latest(container, schedule)
    assert latest.pause_reason == "failures"
    assert latest.failed >= 2
    assert latest.consecutive_failures >= 2
    assert latest.succeeded == 0
    failed = _events(container, schedule, "FireFailed")
    assert all(_run(container, e.call_id).status == RunStatus.FAILED for e in failed)
    assert not target.requests_for("/echo")  # the second step never ran
