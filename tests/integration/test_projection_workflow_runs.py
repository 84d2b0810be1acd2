"""The `workflow_runs` read model: rows folded from runs through the real pipeline (succeeded
with a skipped step, fail_fast, continue, cancelled, retried and re-run, compensated, paused)
match the aggregates; a rebuild and any batch size give the same rows; the list filters,
pages and keeps tenants apart, `latest` finds a name's newest run; an event the read model
cannot fold is recorded and passed over while other tenants' runs still appear."""

import re
import time
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from domain.errors import InvalidRequestError
from domain.workflow_run import WorkflowRun
from harness.target_server import TargetServer
from infrastructure.container import Container
from projections.workflow_runs import (
    TABLE,
    WorkflowRunFilters,
    WorkflowRunsProjection,
    latest_workflow_run,
    list_workflow_runs,
)
from tests.support.read_models import catch_up, checksum, folded_rows
from tests.support.waiting import wait_until

TENANT = "t-wf-rm"
NOWHERE = "http://127.0.0.1:9/never"  # no worker runs in the tests that use it


def _get(url: str, **step: Any) -> dict[str, Any]:
    return {"request": {"method": "GET", "url": url}, **step}


def _submit(c: Container, name: str, steps: list[dict[str, Any]], *, tenant: str = TENANT,
            **definition: Any) -> UUID:
    return c.workflows.submit(tenant, {"name": name, "steps": steps, **definition}, None).run.id


def _run(c: Container, run_id: UUID, tenant: str = TENANT) -> WorkflowRun:
    return c.workflows.get(tenant, run_id)


def _expected(run: WorkflowRun) -> dict[str, Any]:
    """The columns the row must have, from the aggregate."""
    d = run.describe()
    return {
        "tenant_id": run.tenant_id,
        "name": run.name,
        "status": d["status"],
        "definition_version": run.definition_version,
        "origin": getattr(run, "origin", None),
        "halted_by": run.halted_by,
        "compensation": run.compensation,
        "cancel_reason": run.cancel_reason,
        "step_states": {step: record.state.value for step, record in run.steps.items()},
        "steps_total": d["counts"]["total"],
        "steps_succeeded": d["counts"]["succeeded"],
        "steps_failed": d["counts"]["failed"],
        "steps_skipped": d["counts"]["skipped"],
        "steps_cancelled": d["counts"]["cancelled"],
        "steps_running": sum(r.state.value == "running" for r in run.steps.values()),
        "created_at": run.created_on,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_seconds": d["duration_seconds"],
        "updated_at": run.modified_on,
        "version": run.version,
    }


def _matches(row: dict[str, Any], run: WorkflowRun) -> None:
    expected = _expected(run)
    got = {k: row[k] for k in expected}
    if expected["duration_seconds"] is not None:
        assert got.pop("duration_seconds") == pytest.approx(expected.pop("duration_seconds"))
    assert got == expected, run.name


def test_rows_follow_runs_through_the_real_pipeline_and_match_the_aggregates(
    rm_container: Container, database_url: str
) -> None:
    c = rm_container
    with TargetServer() as target:
        target.set_sequence("rm-flaky", [500, 200])
        c.start_projections()
        c.start_workers()
        url = target.url
        one_try = {"max_attempts": 1}
        ok = _submit(c, "ok", [
            _get(f"{url}/ok", id="a"),
            _get(f"{url}/ok", id="b", needs=["a"]),
            _get(f"{url}/ok", id="c", needs=["a"], when="steps.a.status == 500"),
        ])
        fails = _submit(c, "fails", [
            _get(f"{url}/status/500", id="a", retry_policy=one_try),
            _get(f"{url}/ok", id="b", needs=["a"]),
            _get(f"{url}/ok", id="c", needs=["b"]),
        ])
        continues = _submit(c, "continues", [
            _get(f"{url}/status/404", id="a"),
            _get(f"{url}/ok", id="b", needs=["a"]),
            _get(f"{url}/ok", id="other"),
        ], on_failure="continue")
        cancelled = _submit(c, "cancelled", [
            {"id": "wait", "request": {"method": "GET", "url": f"{url}/slow/3",
                                       "timeout_seconds": 10}},
            _get(f"{url}/ok", id="after", needs=["wait"]),
        ])
        retried = _submit(c, "retried", [
            _get(f"{url}/ok", id="first"),
            _get(f"{url}/sequence/rm-flaky", id="flaky", needs=["first"], retry_policy=one_try),
        ])
        saga = _submit(c, "saga", [
            {"id": "book", "request": {"method": "POST", "url": f"{url}/book"},
             "compensate": {"method": "POST", "url": f"{url}/unbook"}},
            {"id": "pay", "needs": ["book"], "on_failure": "compensate",
             "retry_policy": one_try,
             "request": {"method": "POST", "url": f"{url}/status/402"}},
        ])
        paused = _submit(c, "paused", [
            _get(f"{url}/slow/1", id="a"), _get(f"{url}/ok", id="b", needs=["a"]),
        ])
        c.workflows.pause(TENANT, paused)
        target.wait_for(1, path="/slow/3")
        c.workflows.cancel(TENANT, cancelled, "changed my mind")

        def settled(run_id: UUID) -> bool:
            return _run(c, run_id).is_terminal

        wait_until(lambda: settled(retried), timeout=20)
        c.workflows.retry_from_failed(TENANT, retried)
        wait_until(lambda: settled(retried), timeout=20)
        c.workflows.rerun_step(TENANT, retried, "first", {"note": "x"}, "tester")
        wait_until(lambda: settled(retried) and _run(c, retried).steps["first"].generation == 2,
                   timeout=20)
        every = [ok, fails, continues, cancelled, retried, saga]
        wait_until(lambda: all(settled(r) for r in every), timeout=30)
        wait_until(lambda: _run(c, paused).steps["a"].state.value == "succeeded", timeout=15)
        every.append(paused)
        # the cancelled run's step call still had its attempt out: its late outcome reaches
        # the run too; nothing may be left in flight, and the log must be quiet, when the
        # table is compared below
        wait_until(lambda: not any(c.outbox.depth().values()), timeout=30)
        wait_until(lambda: _quiet(c), timeout=30)

    rows = folded_rows(c, "workflow_runs", TABLE)
    for run_id in every:
        _matches(rows[run_id], _run(c, run_id))
    figures = {name: rows[run_id] for name, run_id in zip(
        ("ok", "fails", "continues", "cancelled", "retried", "saga", "paused"), every,
        strict=True)}
    assert (figures["ok"]["status"], figures["ok"]["steps_succeeded"],
            figures["ok"]["steps_skipped"]) == ("succeeded", 2, 1)
    assert figures["ok"]["duration_seconds"] > 0
    assert (figures["fails"]["status"], figures["fails"]["halted_by"],
            figures["fails"]["steps_failed"], figures["fails"]["steps_cancelled"]) == (
        "failed", "a", 1, 2)
    assert (figures["continues"]["steps_failed"], figures["continues"]["steps_skipped"],
            figures["continues"]["steps_succeeded"]) == (1, 1, 1)
    assert (figures["cancelled"]["status"], figures["cancelled"]["cancel_reason"],
            figures["cancelled"]["steps_cancelled"]) == ("cancelled", "changed my mind", 2)
    # failed, retried from the failed step, re-run by hand: every step counted once, succeeded
    assert (figures["retried"]["status"], figures["retried"]["steps_succeeded"],
            figures["retried"]["steps_failed"]) == ("succeeded", 2, 0)
    assert (figures["saga"]["status"], figures["saga"]["compensation"],
            figures["saga"]["halted_by"]) == ("failed", "compensated", "pay")
    assert (figures["paused"]["status"], figures["paused"]["finished_at"],
            figures["paused"]["duration_seconds"]) == ("paused", None, None)

    live = checksum(database_url, TABLE)
    c.read_models.rebuild("workflow_runs")
    assert checksum(database_url, TABLE) == live
    # the follower still runs: it and the batches below fold the model in turns (a catch-up
    # waits for the follower's batch, test_projection_concurrent_folds.py), and agree
    for size in (1, 3):
        c.read_models.reset("workflow_runs")
        c.read_models.runner_for(WorkflowRunsProjection(), size).catch_up(lambda _: None)
        assert checksum(database_url, TABLE) == live, size


def _quiet(container: Container) -> bool:
    """No event recorded for half a second."""
    head = container.read_models.head()
    time.sleep(0.5)
    return container.read_models.head() == head


def _ids(page: Any) -> list[UUID]:
    return [item["id"] for item in page.items]


def test_the_list_filters_pages_finds_the_latest_and_keeps_tenants_apart(
    rm_container: Container,
) -> None:
    c = rm_container
    names = ["nightly", "import", "nightly", "export", "nightly"]
    made = [_submit(c, name, [_get(NOWHERE, id="a"), _get(NOWHERE, id="b", needs=["a"])])
            for name in names]  # no workers: each stays running on its first step
    c.workflows.cancel(TENANT, made[1])
    c.workflows.pause(TENANT, made[3])
    theirs = _submit(c, "nightly", [_get(NOWHERE, id="a")], tenant="t-wf-other")
    catch_up(c)

    with c.read_models.reading("workflow_runs") as (curs, _):
        def listed(**kwargs: Any) -> list[UUID]:
            return _ids(list_workflow_runs(curs, TENANT, WorkflowRunFilters(**kwargs)))

        def walk(limit: int, **kwargs: Any) -> list[UUID]:
            seen: list[UUID] = []
            cursor = None
            while True:
                page = list_workflow_runs(curs, TENANT, WorkflowRunFilters(**kwargs),
                                          limit=limit, cursor=cursor)
                seen += _ids(page)
                if (cursor := page.next_cursor) is None:
                    return seen

        newest_first = made[::-1]
        assert listed() == newest_first
        assert walk(2) == newest_first
        assert walk(1, name="nightly") == [made[4], made[2], made[0]]
        assert listed(status=["cancelled"]) == [made[1]]
        assert listed(status=["paused", "cancelled"]) == [made[3], made[1]]
        assert listed(status=["running"], name="nightly") == [made[4], made[2], made[0]]
        assert listed(name="nobody") == []
        rows = {item["id"]: item for item in
                list_workflow_runs(curs, TENANT, WorkflowRunFilters()).items}
        middle = rows[made[2]]["created_at"]
        assert listed(created_after=middle) == [made[4], made[3], made[2]]
        assert listed(created_before=middle) == [made[1], made[0]]
        assert listed(created_after=rows[made[1]]["created_at"], created_before=middle) == [
            made[1]]
        item = rows[made[0]]
        assert "step_states" not in item
        assert (item["status"], item["steps_total"], item["steps_running"]) == ("running", 2, 1)
        assert item["duration_seconds"] is None
        page = list_workflow_runs(curs, TENANT, WorkflowRunFilters(), limit=2, include_total=True)
        assert (page.total, len(page.items)) == (5, 2)

        latest = latest_workflow_run(curs, TENANT, "nightly")
        assert latest is not None
        assert latest["id"] == made[4]
        assert latest_workflow_run(curs, TENANT, "export") == rows[made[3]]
        assert latest_workflow_run(curs, TENANT, "nobody") is None
        assert _ids(list_workflow_runs(curs, "t-wf-other", WorkflowRunFilters())) == [theirs]
        theirs_latest = latest_workflow_run(curs, "t-wf-other", "nightly")
        assert theirs_latest is not None
        assert theirs_latest["id"] == theirs

        for filters, field in ((WorkflowRunFilters(status=["sleeping"]), "status"),
                               (WorkflowRunFilters(created_after=middle, created_before=middle),
                                "created_before")):
            with pytest.raises(InvalidRequestError) as refused:
                list_workflow_runs(curs, TENANT, filters)
            assert refused.value.field == field
        with pytest.raises(InvalidRequestError) as bad_cursor:
            list_workflow_runs(curs, TENANT, WorkflowRunFilters(), cursor="not-a-cursor")
        assert bad_cursor.value.field == "cursor"


def test_an_event_the_read_model_cannot_fold_is_recorded_and_other_runs_still_appear(
    rm_container: Container,
) -> None:
    """A StepStarted naming a step its run does not have (a copy of a real one, changed):
    recorded as a failure of this read model and passed over; the other tenant's runs,
    folded in the same batch, appear."""
    c = rm_container
    model = _submit(c, "model", [_get(NOWHERE, id="a")], tenant="t-wf-bad")
    recorder = c.service_calls.recorder
    started = next(e for e in recorder.select_events(model)
                   if e.topic == "duecall:WorkflowRun.StepStarted")
    created = next(e for e in recorder.select_events(model) if e.originator_version == 1)
    state, replaced = re.subn(rb'"step":"a"', b'"step":"ghost"', started.state)
    assert replaced == 1
    bad = uuid4()
    recorder.insert_events([StoredEvent(bad, 1, created.topic, created.state),
                            StoredEvent(bad, 2, started.topic, state)])
    good = _submit(c, "good", [_get(NOWHERE, id="a")], tenant="t-wf-good")
    catch_up(c)

    with c.read_models.reading("workflow_runs") as (curs, _):
        assert _ids(list_workflow_runs(curs, "t-wf-good", WorkflowRunFilters())) == [good]
        mine = _ids(list_workflow_runs(curs, "t-wf-bad", WorkflowRunFilters()))
    assert set(mine) == {model, bad}  # its Created folded; only the bad event passed over
    [failure] = c.read_models.failures("workflow_runs")
    assert (failure.topic, failure.originator_id) == ("duecall:WorkflowRun.StepStarted", bad)
    assert "ghost" in failure.error
    status = next(s for s in c.read_models.status() if s.name == "workflow_runs")
    assert (status.failures, status.lag_events) == (1, 0)
