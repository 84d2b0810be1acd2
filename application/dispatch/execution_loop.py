"""The execution loop: many HTTP attempts in flight at once, outcomes recorded in batches.

Claim ``execute`` messages (leased for the call's timeout plus a grace period), or take the
timer's early starts (already leased here) → send each request concurrently at its due time →
record the results, a batch per transaction: each Execution's Started and outcome events with
what the orchestration policy decides for its call (``ServiceCalls.finish_attempts``). A worker
killed mid-request loses only its leases: the messages become available again and another
worker makes the same attempt, with the same Idempotency-Key.

Stopping (SIGTERM) is graceful: no new claims; attempts in flight get ``shutdown_timeout``
(three quarters of it) to finish and be recorded; those still running then are cancelled and
handed back (their messages available again at once, not after their leases), and the loop
returns within ``shutdown_timeout``.

Secret header values travel sealed (in the ``execute`` message and the Execution's events);
the worker opens them just before sending, and cuts them out of what it records (an error
message or a response that quotes them). A response whose call says ``seal_response`` (a
workflow step with secret outputs) is recorded sealed: its body snippet and header values.

One module over 300 lines on purpose: the claim, early-start, send and record paths share
the loop's state (free slots, messages in hand, attempts in flight) on one event loop.
"""

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import structlog

from application.clock import utcnow
from application.dispatch.batching import in_batch_or_one_by_one
from application.metrics import (
    ATTEMPT_SECONDS,
    ATTEMPTS_FINISHED,
    ATTEMPTS_IN_FLIGHT,
    ATTEMPTS_STARTED,
    SCHEDULE_FIRE_LATENESS_SECONDS,
    START_LATENESS_SECONDS,
)
from application.outbox import (
    EXECUTE,
    Outbox,
    OutboxMessage,
    is_fire,
    is_step,
    is_unstarted,
    seals_response,
    started_version_of,
    still_leased,
)
from application.ports import HttpSender, SecretBox
from application.service_calls import Attempt, ServiceCalls
from application.signing import RequestSigner
from application.supervision import Backoff, supervise_async
from application.tracing import NO_TRACING, Tracer
from domain.outcome import AttemptResult, ErrorKind
from domain.redaction import scrub_text, secret_values

log = structlog.get_logger(__name__)

Finished = tuple[Attempt, AttemptResult]


class ExecutionLoop:
    def __init__(
        self,
        calls: ServiceCalls,
        outbox: Outbox,
        sender: HttpSender,
        *,
        max_in_flight: int,
        batch_size: int,
        poll_interval: float,
        linger: float = 0.0,
        idle_linger: float | None = None,
        held_back: Callable[[], bool] = lambda: False,
        signer: RequestSigner | None = None,
        secret_box: SecretBox,
        shutdown_timeout: float = 30.0,
        unavailable: tuple[type[Exception], ...] = (),
        tracer: Tracer = NO_TRACING,
        slots_available: threading.Event | None = None,
        record_running_after: float = 0.0,
    ) -> None:
        """``record_running_after``: a deferred start (``ServiceCalls.start_due``) still in
        flight this many seconds after its request went out is recorded as running.
        ``linger``: how long outcomes are gathered before they are recorded; ``idle_linger``
        (default ``linger``): longer, while ``held_back()`` says no claim waits for the slots
        the outcomes will free."""
        self._record_running_after = record_running_after
        self._calls = calls
        self._tracer = tracer
        self._unavailable = unavailable
        self._in_hand: list[OutboxMessage] = []  # claimed, not begun: the database went away
        self._shutdown_timeout = shutdown_timeout
        self._secret_box = secret_box
        self._signer = signer
        self._linger = linger
        self._idle_linger = linger if idle_linger is None else max(idle_linger, linger)
        self._held_back = held_back
        # a finished attempt is waiting that something waits for (a workflow step's: its
        # successors start once its outcome is recorded): no long linger
        self._awaited = asyncio.Event()
        self._outbox = outbox
        self._sender = sender
        self._max_in_flight = max_in_flight
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._in_flight = 0
        # finished attempts, and deferred starts still in flight (``_record_results``)
        self._results: asyncio.Queue[Finished | Attempt] = asyncio.Queue()
        self._slots_freed = asyncio.Event()
        self._sending: dict[asyncio.Task[None], Attempt] = {}
        # set when attempts finish: the timer (which takes no more than ``free_slots()``) may go on
        self.slots_available = slots_available or threading.Event()

    async def run(self, stop: asyncio.Event) -> None:
        recorder = asyncio.create_task(self._record_results())
        try:
            await self._claim_and_send(stop)
            await self._drain()
        finally:
            recorder.cancel()

    async def _drain(self) -> None:
        """Graceful stop: let attempts in flight finish and be recorded, within the deadline;
        hand back what is still at its target by then."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        sends_until = began + self._shutdown_timeout * 0.75
        records_until = began + self._shutdown_timeout * 0.9
        log.info("execution_draining", in_flight=self._in_flight, timeout=self._shutdown_timeout)
        while self._sending and loop.time() < sends_until:
            await asyncio.sleep(0.01)
        handed_back = 0
        if self._sending:
            unfinished = dict(self._sending)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
            self._in_flight -= len(unfinished)
            messages = [attempt.message for attempt in unfinished.values()]
            try:
                handed_back = await asyncio.to_thread(self._outbox.release, messages)
            except Exception:  # the database is away: their leases end on their own
                log.exception("hand_back_failed", attempts=len(messages))
        while self._in_flight and loop.time() < records_until:
            await asyncio.sleep(0.01)
        log.info(
            "execution_drained",
            seconds=round(loop.time() - began, 3),
            handed_back=handed_back,
            unrecorded=self._in_flight,  # their leases end, another worker repeats them
        )

    async def _claim_and_send(self, stop: asyncio.Event) -> None:
        await supervise_async(
            self._claim_and_send_once, stop, "execution_claim", on_error=self._drop_in_hand
        )

    async def _claim_and_send_once(self) -> None:
        """Claim what this worker has free slots for (or wait for a slot, or for work), begin the
        attempts and send each on a task of its own."""
        free = self._max_in_flight - self._in_flight
        if free <= 0:
            self._slots_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slots_freed.wait(), self._poll_interval)
            return
        claimed = still_leased(self._in_hand) or await asyncio.to_thread(
            self._outbox.claim, EXECUTE, min(free, self._batch_size)
        )
        if not claimed:
            await asyncio.to_thread(self._outbox.wait, EXECUTE, self._poll_interval)
            return
        self._in_hand = claimed
        attempts = await asyncio.to_thread(self._calls.begin_attempts, claimed)
        self._in_hand = []
        for attempt in attempts:
            self._in_flight += 1
            task = asyncio.create_task(self._send(attempt))
            self._sending[task] = attempt
            task.add_done_callback(self._sent)

    def _drop_in_hand(self, error: Exception) -> None:
        """The database away: keep the claimed messages (begun once it is back, while their
        leases last); any other failure: drop them (redelivered when their leases end)."""
        if not isinstance(error, self._unavailable):
            self._in_hand = []

    def _free(self, slots: int) -> None:
        """Attempts that are over (recorded, withdrawn, or never begun): their slots are free
        for the claim loop and for the timer."""
        if slots:
            self._in_flight -= slots
            self._slots_freed.set()
            self.slots_available.set()

    def free_slots(self) -> int:
        """How many more attempts this worker takes on now (read from the timer's thread)."""
        return self._max_in_flight - self._in_flight

    def accept(self, attempts: Sequence[Attempt]) -> None:
        """Attempts the timer of this process started (or deferred starting) and leased to it
        (called in this worker's event loop): each request goes out at its due time."""
        self._in_flight += len(attempts)
        for attempt in attempts:
            task = asyncio.create_task(self._send(attempt, on_time=True))
            self._sending[task] = attempt
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.pop(task, None)

    async def _send(self, attempt: Attempt, on_time: bool = False) -> None:
        """Make the attempt; ``on_time``: the timer's hand-off, sent at its due time (not
        before), how late it went counted."""
        due = attempt.message.due_at
        if on_time and due is not None:
            if due.timestamp() - time.time() > CANCEL_CHECK_AHEAD:  # started early
                await _until(due.timestamp() - CANCEL_CHECK_AHEAD)
                if await self._cancelled_meanwhile(attempt):
                    return
            await _until(due.timestamp())
            late = max(0.0, time.time() - due.timestamp())
            START_LATENESS_SECONDS.observe(late)
            if is_fire(attempt.message):
                SCHEDULE_FIRE_LATENESS_SECONDS.observe(late)
        ATTEMPTS_STARTED.inc()
        ATTEMPTS_IN_FLIGHT.inc()
        span = self._tracer.attempt(attempt)
        slow = None
        if is_unstarted(attempt.message):  # its start goes with its outcome, unless it is slow
            loop = asyncio.get_running_loop()
            slow = loop.call_later(self._record_running_after, self._results.put_nowait, attempt)
        try:
            result = await self._attempt(attempt, span.headers)
        except BaseException:  # cancelled at a stop: handed back, made again elsewhere
            span.end(None)
            raise
        finally:
            if slow is not None:
                slow.cancel()
        classified = result.classified()
        span.end(classified)
        _count_finished(classified)
        attempt.ended_at = utcnow()  # retries count from here, however long recording waits
        await self._results.put((attempt, result))
        if is_step(attempt.message):
            self._awaited.set()

    async def _cancelled_meanwhile(self, attempt: Attempt) -> bool:
        """Was the call changed (cancelled) since the timer started it early? Then the attempt
        is withdrawn, not made. A cancel later than this check finds it as good as running."""
        message = attempt.message
        version = started_version_of(message)
        if version is None:
            return False
        try:
            changed = await asyncio.to_thread(
                self._outbox.changed_since, {message.service_call_id: version}
            )
            if message.service_call_id not in changed:
                return False
            await asyncio.to_thread(self._calls.withdraw_attempts, [attempt])
        except Exception:  # cannot tell (the database is away): make it, as if running
            log.exception("early_start_check_failed", **attempt.execution.log_context())
            return False
        self._free(1)
        log.info("early_start_withdrawn", **attempt.execution.log_context())
        return True

    async def _attempt(self, attempt: Attempt, trace: Mapping[str, str]) -> AttemptResult:
        """Send the request (with the Idempotency-Key, signature and ``trace`` headers: per
        attempt, never recorded as part of the call's request)."""
        try:
            # the only place a secret header value is in clear after submit: opened right
            # before sending, never recorded (the execution's events keep the sealed values)
            request = attempt.request.opened(self._secret_box.open)
        except Exception:  # tampered with, or sealed under another DUECALL_SECRET_KEY
            log.exception("secret_header_unreadable", **attempt.execution.log_context())
            return AttemptResult(
                0.0,
                error_kind=ErrorKind.REJECTED,
                message="not sent: a secret header value could not be opened "
                "(sealed with another DUECALL_SECRET_KEY?)",
            )
        secrets = secret_values(request.headers, request.secret_names)
        headers = {"Idempotency-Key": attempt.idempotency_key, **trace}
        try:
            if self._signer is not None:
                body = (request.body or "").encode()
                message = attempt.message
                headers.update(
                    await self._signer.headers(
                        message.tenant_id, str(message.service_call_id), body
                    )
                )
            result = await self._sender.send(request, headers)
        except Exception as error:  # the sender should not raise; never lose the attempt
            # its traceback repeats the error's text, which may quote a secret: logged only
            # when no secret was sent
            log.error("sender_raised", error=scrub_text(repr(error), secrets), exc_info=not secrets)
            result = AttemptResult(0.0, error_kind=ErrorKind.NETWORK, message=str(error))
        result = _scrubbed(result, secrets)
        if seals_response(attempt.message):  # a workflow step's secret output is in it
            return _sealed_response(result, self._secret_box.seal)
        return result

    async def _record_results(self) -> None:
        """Record finished attempts in batches; lingering a moment after the first result
        gathers more per transaction (fewer holders of the events table's write lock). An
        outcome holds its attempt's concurrency slots until it is recorded, so the longer
        ``idle_linger`` applies only while the timer is not held back waiting for slots, and
        ends when a workflow step's outcome arrives (the run's next steps wait for it).
        Deferred starts still in flight ``record_running_after`` their requests went out come
        through the same queue, to be recorded as running (before any outcome of theirs)."""
        while True:
            batch = [await self._results.get()]
            if self._linger > 0 and self._results.qsize() < self._batch_size:
                await asyncio.sleep(self._linger)
                if self._idle_linger > self._linger and not self._held_back():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self._awaited.wait(), self._idle_linger - self._linger
                        )
            self._awaited.clear()
            while len(batch) < self._batch_size and not self._results.empty():
                batch.append(self._results.get_nowait())
            finished = [item for item in batch if isinstance(item, tuple)]
            done = {id(attempt) for attempt, _ in finished}
            slow = [
                item for item in batch
                if isinstance(item, Attempt) and id(item) not in done
                and is_unstarted(item.message)
            ]
            if slow:
                await self._record_running(slow)
            if finished:
                await self._record(finished)
                self._free(len(finished))

    async def _record_running(self, attempts: Sequence[Attempt]) -> None:
        """Record slow deferred starts as running. Failing (a conflict: a call changed
        meanwhile; the database away), they stay deferred, their calls read anew with their
        outcomes, their ``start`` messages' leases keeping them durable meanwhile."""
        try:
            await asyncio.to_thread(self._calls.record_running, attempts)
        except Exception:
            for attempt in attempts:
                attempt.call = None
            log.warning("record_running_failed", attempts=len(attempts), exc_info=True)

    async def _record(self, batch: Sequence[Finished]) -> None:
        """Record until it works: a failed save leaves the in-memory executions changed, so
        every retry starts again from the executions as recorded."""
        backoff = Backoff()
        retrying = False
        while True:
            try:
                await asyncio.to_thread(self._record_now, batch, retrying)
                return
            except Exception:
                retrying = True
                wait = backoff.next()
                log.exception("recording_outcomes_failed", size=len(batch), retry_in=wait)
                await asyncio.sleep(wait)

    def _record_now(self, batch: Sequence[Finished], from_fresh_state: bool) -> None:
        if from_fresh_state:
            batch = [self._fresh(finished) for finished in batch]
        left = in_batch_or_one_by_one(self._calls.finish_attempts, batch, self._fresh)
        if left:  # never hand back a finished attempt (it would be sent again): retry
            raise OutcomesConflictError(f"{len(left)} outcomes still conflict; trying again")

    def _fresh(self, finished: Finished) -> Finished:
        attempt, result = finished
        return self._calls.reload_attempt(attempt), result


CANCEL_CHECK_AHEAD = 0.05  # seconds before the due time an early start looks for a cancel


async def _until(moment: float) -> None:
    """Sleep until the wall clock reads ``moment`` (never wake before it)."""
    while (left := moment - time.time()) > 0:
        await asyncio.sleep(left)


class OutcomesConflictError(Exception):
    """Recording outcomes kept conflicting with other writers; the batch is recorded again."""


def _count_finished(result: AttemptResult) -> None:
    ATTEMPTS_IN_FLIGHT.dec()
    ATTEMPT_SECONDS.observe(result.duration_ms / 1000)
    outcome = "succeeded" if result.succeeded else "failed"
    kind = result.error_kind.value if result.error_kind else ""
    ATTEMPTS_FINISHED.labels(outcome, kind).inc()


# a response header whose value decides the retry (read from the recorded headers): no secret
_CLEAR_HEADERS = frozenset({"retry-after"})


def _sealed_response(result: AttemptResult, seal: Callable[[str], str]) -> AttemptResult:
    """The result with its response sealed, to be recorded (the call's ``seal_response``:
    a workflow step whose outputs are secret reads them from it): its body snippet and its
    header values, but ``Retry-After``. Its workflow run opens them to take the outputs."""
    headers = result.headers
    return replace(
        result,
        body_snippet=None if result.body_snippet is None else seal(result.body_snippet),
        headers=None if headers is None else {
            name: value if name.lower() in _CLEAR_HEADERS else seal(value)
            for name, value in headers.items()
        },
    )


def _scrubbed(result: AttemptResult, secrets: Sequence[str]) -> AttemptResult:
    """The result with the secret values just sent cut out of what will be recorded: an error
    message quoting a header, a response echoing one (in its headers or body)."""
    if not secrets:
        return result

    def scrub(text: str | None) -> str | None:
        return None if text is None else scrub_text(text, secrets)

    headers = result.headers
    return replace(
        result,
        message=scrub(result.message),
        body_snippet=scrub(result.body_snippet),
        headers=None if headers is None else {
            name: scrub_text(value, secrets) for name, value in headers.items()
        },
    )
