"""A workflow run's events in the shared timeline (`duecall workflows show RUN --events`): each
says what happened by step, and is told by its version."""

from interfaces.timeline import timeline


def _event(version: int, kind: str, at: str, **payload: object) -> dict[str, object]:
    return {"type": f"WorkflowRun.{kind}", "version": version, "originator_id": "r",
            "timestamp": at, "payload": payload}


def test_a_runs_events_are_lines_by_version_with_their_step_and_reason() -> None:
    lines = timeline([
        _event(1, "Created", "2026-12-06T10:00:00+00:00", name="pay",
               definition={"steps": [{}, {}]}),
        _event(2, "StepStarted", "2026-12-06T10:00:00.500000+00:00", step="auth", generation=1),
        _event(3, "StepFailed", "2026-12-06T10:00:02+00:00", step="auth", status_code=503,
               reason="status 503 is not a success"),
        _event(4, "Unheard", "2026-12-06T10:00:03+00:00", x=1),
    ])

    assert [line.who for line in lines] == ["v1", "v2", "v3", "v4"]
    assert [line.offset for line in lines] == [0.0, 0.5, 2.0, 3.0]
    assert lines[0].what == "submitted 'pay': 2 steps"
    assert lines[1].what == "auth started (generation 1) → call"
    assert (lines[2].what, lines[2].style) == (
        "auth failed (503): status 503 is not a success", "red")
    assert lines[3].what == "WorkflowRun.Unheard {'x': 1}"  # a kind it does not know: named
