"""The worker processes' loops: the timer, the execution loop, the schedule loop, the
workflow loop and the liveness beat, each on its own thread."""

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import structlog

from application.dispatch.execution_loop import ExecutionLoop
from application.dispatch.liveness import Liveness, WorkerRegistry
from application.dispatch.producer_loop import ProducerLoop
from application.dispatch.timer import Timer
from application.outbox import EXECUTE, SCHEDULE, WORKFLOW, Outbox
from application.ports import HttpSender
from application.schedules import Schedules
from application.service_calls import Attempt, ServiceCalls
from application.signing import RequestSigner
from application.tracing import NO_TRACING, Tracer
from application.workflows import Workflows

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    batch_size: int = 500
    max_in_flight: int = 256
    poll_interval: float = 1.0
    timer_lookahead: float = 1.0
    # the timer starts attempts (records them, leased to this worker) this long before they
    # are due and hands them to this worker's execution loop, which sends them at their due
    # time (0: started at their due time, then handed over)
    timer_prestart: float = 0.25
    switch_interval: float = 0.0005
    linger: float = 0.02  # outcome recording: batch for this long
    # ... or this long while the timer is not held back by a concurrency limit (a steady
    # modest rate: fewer, larger outcome transactions)
    outcome_linger: float = 0.02
    # a first attempt's start is recorded with its outcome (one transaction less per call),
    # or as running once its request has been out this long (0: before it is sent)
    record_running_after: float = 0.0
    shutdown_timeout: float = 30.0  # stop(): attempts in flight finish or are handed back
    heartbeat_interval: float = 1.0  # liveness: this worker says it is alive this often
    dead_after: float = 3.0  # a worker silent this long is dead: its leases end


class Workers:
    def __init__(
        self,
        service_calls: ServiceCalls,
        outbox: Outbox,
        sender_factory: Callable[[], HttpSender],
        options: WorkerOptions,
        signer: RequestSigner | None = None,
        unavailable: tuple[type[Exception], ...] = (),
        tracer: Tracer = NO_TRACING,
        schedules: Schedules | None = None,
        registry: WorkerRegistry | None = None,
        workflows: Workflows | None = None,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> None:
        """``unavailable``: the errors that mean the database is away (work in hand is kept
        and done once it is back, instead of waiting for its leases to end); ``schedules``:
        fire them too (the schedule loop); ``registry``: beat, and free dead workers' leases
        (``Liveness``); ``workflows``: advance their runs (the workflow loop);
        ``loop_factory``: the execution loop's event loop (default: asyncio's own)."""
        self._loop_factory = loop_factory
        self._unavailable = unavailable
        self._tracer = tracer
        self._calls = service_calls
        self._secret_box = service_calls.secret_box  # opens what submit sealed
        self._signer = signer
        self._outbox = outbox
        self._sender_factory = sender_factory
        self._options = options
        self._slots_available = threading.Event()  # the execution loop has free slots again
        self._timer = Timer(
            outbox,
            partial(
                service_calls.start_due,
                hand_off=self._hand_off,
                defer=options.record_running_after > 0,
            ),
            batch_size=options.batch_size,
            poll_interval=options.poll_interval,
            lookahead=options.timer_lookahead,
            unavailable=unavailable,
            prestart=min(options.timer_prestart, options.timer_lookahead),
            free_slots=self._free_slots,
            slots_available=self._slots_available,
        )
        self._schedule_loop = None if schedules is None else ProducerLoop(
            SCHEDULE,
            outbox,
            schedules.handle,
            batch_size=options.batch_size,
            lookahead=schedules.lookahead,
        )
        self._workflow_loop = None if workflows is None else ProducerLoop(
            WORKFLOW, outbox, workflows.handle, batch_size=options.batch_size
        )
        self._liveness = None if registry is None else Liveness(
            registry,
            self._in_flight,
            interval=options.heartbeat_interval,
            dead_after=options.dead_after,
        )
        self._beating: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_execution: asyncio.Event | None = None
        self._execution_ready = threading.Event()
        self._execution: ExecutionLoop | None = None

    def start(self) -> None:
        # The loops hand the GIL to one another around every database round trip; with the
        # default 5 ms switch interval a waiting thread (the timer, say) can lose that long at
        # each hand-over. A shorter interval keeps the timer on time.
        sys.setswitchinterval(self._options.switch_interval)
        if self._liveness is not None:  # alive before it claims anything
            self._beating = threading.Thread(
                target=self._liveness.run, name="duecall-liveness", daemon=True
            )
            self._beating.start()
        self._spawn("execution", self._execute)
        self._execution_ready.wait(5)  # before the timer, which hands it early starts
        self._spawn(self._timer.name, self._timer.run)
        loops = [self._timer.name, "execution"]
        if self._schedule_loop is not None:
            self._spawn(self._schedule_loop.name, self._schedule_loop.run)
            loops.append(self._schedule_loop.name)
        if self._workflow_loop is not None:
            self._spawn(self._workflow_loop.name, self._workflow_loop.run)
            loops.append(self._workflow_loop.name)
        log.info("workers_started", loops=loops)

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming; let work in hand finish (attempts in flight: up to the shutdown
        timeout, then handed back); return within ``timeout`` (default: the shutdown timeout
        and a second)."""
        began = time.monotonic()
        deadline = began + (self._options.shutdown_timeout + 1 if timeout is None else timeout)
        if self._schedule_loop is not None:
            self._schedule_loop.stop()
        if self._workflow_loop is not None:
            self._workflow_loop.stop()
        self._timer.stop()
        # the timer first: what it hands the execution loop as it stops is still drained
        for thread in self._threads:
            if thread.name == "duecall-timer":
                thread.join(max(0.0, deadline - time.monotonic()))
        if self._loop and self._stop_execution:
            self._loop.call_soon_threadsafe(self._stop_execution.set)
            self._outbox.wake(EXECUTE)  # a claim loop waiting for messages stops now
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        unfinished = [thread.name for thread in self._threads if thread.is_alive()]
        if self._liveness is not None and self._beating is not None:
            # alive until what it held is recorded or handed back
            self._liveness.stop()
            self._beating.join(max(0.0, deadline - time.monotonic()))
            if not unfinished:
                self._liveness.leave()
        log.info(
            "workers_stopped", seconds=round(time.monotonic() - began, 3), unfinished=unfinished
        )

    def _free_slots(self) -> int:
        """How many more attempts this worker's execution loop takes on."""
        return self._execution.free_slots() if self._execution else 0

    def _in_flight(self) -> int:
        """How many attempts this worker's execution loop has in hand."""
        return self._options.max_in_flight - self._free_slots() if self._execution else 0

    def _hand_off(self, attempts: Sequence[Attempt]) -> None:
        """The timer's starts (leased to this worker) go to the execution loop; if it is gone
        (stopping), they are handed back, available at their due time."""
        loop, execution = self._loop, self._execution
        try:
            if loop is None or execution is None:
                raise RuntimeError("the execution loop is not running")
            loop.call_soon_threadsafe(execution.accept, attempts)
        except RuntimeError:
            log.warning("early_starts_handed_back", attempts=len(attempts))
            # failing, their leases end: late, not lost
            self._outbox.release([attempt.message for attempt in attempts])

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"duecall-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _execute(self) -> None:
        with asyncio.Runner(loop_factory=self._loop_factory) as runner:
            runner.run(self._run_execution())

    async def _run_execution(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_execution = asyncio.Event()
        sender = self._sender_factory()
        worker = ExecutionLoop(
            self._calls,
            self._outbox,
            sender,
            max_in_flight=self._options.max_in_flight,
            batch_size=self._options.batch_size,
            poll_interval=self._options.poll_interval,
            linger=self._options.linger,
            idle_linger=self._options.outcome_linger,
            held_back=lambda: self._timer.held_back,
            signer=self._signer,
            secret_box=self._secret_box,
            shutdown_timeout=self._options.shutdown_timeout,
            unavailable=self._unavailable,
            tracer=self._tracer,
            slots_available=self._slots_available,
            record_running_after=self._options.record_running_after,
        )
        self._execution = worker
        self._execution_ready.set()
        try:
            await worker.run(self._stop_execution)
        finally:
            await sender.aclose()
