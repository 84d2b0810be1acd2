"""Supervised loops without a database: the backoff's waits, and a failed step logged, handed
to its error handler and tried again until the loop is stopped."""

import asyncio
import threading

from structlog.testing import capture_logs

from application.supervision import Backoff, supervise, supervise_async


def test_the_backoff_doubles_up_to_its_cap_and_starts_again_after_a_reset() -> None:
    backoff = Backoff(first=0.1, cap=0.5)
    assert [backoff.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next() == 0.1


class _Steps:
    """Fails the first ``failures`` steps, then stops the loop after ``successes`` more."""

    def __init__(self, stopped: threading.Event | asyncio.Event, failures: int, successes: int):
        self.stopped = stopped
        self.failures = failures
        self.successes = successes
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"away ({self.calls})")
        if self.calls >= self.failures + self.successes:
            self.stopped.set()


def test_a_failed_step_is_logged_handled_and_tried_again_after_a_growing_wait() -> None:
    stopped = threading.Event()
    steps = _Steps(stopped, failures=3, successes=1)
    handled: list[str] = []
    with capture_logs() as logs:
        supervise(steps, stopped, "test-loop", on_error=lambda e: handled.append(str(e)),
                  backoff=Backoff(first=0.001, cap=0.002))
    assert steps.calls == 4
    assert handled == ["away (1)", "away (2)", "away (3)"]
    failed = [entry for entry in logs if entry["event"] == "loop_failed"]
    assert [(entry["loop"], entry["retry_in"]) for entry in failed] == [
        ("test-loop", 0.001), ("test-loop", 0.002), ("test-loop", 0.002)
    ]


def test_a_step_that_succeeds_resets_the_backoff() -> None:
    stopped = threading.Event()
    backoff = Backoff(first=0.001, cap=1.0)
    steps = _Steps(stopped, failures=2, successes=1)
    supervise(steps, stopped, "test-loop", backoff=backoff)
    assert backoff.next() == 0.001


def test_a_stopped_loop_returns_during_its_wait() -> None:
    stopped = threading.Event()

    def fail() -> None:
        threading.Timer(0.05, stopped.set).start()
        raise ConnectionError("away")

    loop = threading.Thread(target=supervise, args=(fail, stopped, "test-loop"),
                            kwargs={"backoff": Backoff(first=60.0, cap=60.0)})
    loop.start()
    loop.join(timeout=5)
    assert not loop.is_alive()


def test_the_async_loop_is_supervised_the_same_way() -> None:
    async def scenario() -> tuple[int, list[str]]:
        stopped = asyncio.Event()
        steps = _Steps(stopped, failures=2, successes=2)
        handled: list[str] = []

        async def step() -> None:
            steps()

        await supervise_async(step, stopped, "test-task",
                              on_error=lambda e: handled.append(str(e)),
                              backoff=Backoff(first=0.001, cap=0.002))
        return steps.calls, handled

    assert asyncio.run(scenario()) == (4, ["away (1)", "away (2)"])
