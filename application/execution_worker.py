"""The execution worker: many HTTP attempts in flight at once, outcomes recorded in batches.

Claim ``execute`` messages (leased for the call's timeout plus a grace period) → record
Execution.Started for the batch → send each request concurrently → collect results and record
them, a batch per transaction, with the ``outcome`` messages for orchestration. A worker killed
mid-request loses only its leases: the messages become available again and another worker makes
the same attempt, with the same Idempotency-Key.
"""

import asyncio
import contextlib
from collections.abc import Sequence

import structlog

from application.batching import in_batch_or_one_by_one
from application.executions import Attempt, Executions
from application.metrics import (
    ATTEMPT_SECONDS,
    ATTEMPTS_FINISHED,
    ATTEMPTS_IN_FLIGHT,
    ATTEMPTS_STARTED,
)
from application.outbox import EXECUTE, Outbox
from application.ports import HttpSender
from application.signing import RequestSigner
from domain.outcome import AttemptResult, ErrorKind

log = structlog.get_logger(__name__)

Finished = tuple[Attempt, AttemptResult]


class ExecutionWorker:
    def __init__(
        self,
        executions: Executions,
        outbox: Outbox,
        sender: HttpSender,
        *,
        max_in_flight: int,
        batch_size: int,
        poll_interval: float,
        linger: float = 0.0,
        signer: RequestSigner | None = None,
    ) -> None:
        self._executions = executions
        self._signer = signer
        self._linger = linger
        self._outbox = outbox
        self._sender = sender
        self._max_in_flight = max_in_flight
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._in_flight = 0
        self._results: asyncio.Queue[Finished] = asyncio.Queue()
        self._slots_freed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        recorder = asyncio.create_task(self._record_results())
        try:
            await self._claim_and_send(stop)
            while self._in_flight:  # graceful stop: let in-flight attempts finish
                await asyncio.sleep(0.01)
        finally:
            recorder.cancel()

    async def _claim_and_send(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            free = self._max_in_flight - self._in_flight
            if free <= 0:
                self._slots_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slots_freed.wait(), self._poll_interval)
                continue
            try:
                claimed = await asyncio.to_thread(
                    self._outbox.claim, EXECUTE, min(free, self._batch_size)
                )
                if not claimed:
                    await asyncio.to_thread(self._outbox.wait, EXECUTE, self._poll_interval)
                    continue
                attempts = await asyncio.to_thread(self._executions.begin, claimed)
                backoff = 0.1
            except Exception:
                log.exception("execution_claim_failed", backoff=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            for attempt in attempts:
                self._in_flight += 1
                task = asyncio.create_task(self._send(attempt))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _send(self, attempt: Attempt) -> None:
        headers = {"Idempotency-Key": attempt.idempotency_key}
        ATTEMPTS_STARTED.inc()
        ATTEMPTS_IN_FLIGHT.inc()
        try:
            if self._signer is not None:
                body = (attempt.request.body or "").encode()
                message = attempt.message
                headers.update(
                    await self._signer.headers(
                        message.tenant_id, str(message.service_call_id), body
                    )
                )
            result = await self._sender.send(attempt.request, headers)
        except Exception as error:  # the sender should not raise; never lose the attempt
            log.exception("sender_raised")
            result = AttemptResult(0.0, error_kind=ErrorKind.NETWORK, message=str(error))
        _count_finished(result.classified())
        await self._results.put((attempt, result))

    async def _record_results(self) -> None:
        """Record finished attempts in batches; lingering a moment after the first result
        gathers more per transaction (fewer holders of the events table's write lock)."""
        while True:
            batch = [await self._results.get()]
            if self._linger > 0 and self._results.qsize() < self._batch_size:
                await asyncio.sleep(self._linger)
            while len(batch) < self._batch_size and not self._results.empty():
                batch.append(self._results.get_nowait())
            await self._record(batch)
            self._in_flight -= len(batch)
            self._slots_freed.set()

    async def _record(self, batch: Sequence[Finished]) -> None:
        """Record until it works: a failed save leaves the in-memory executions changed, so
        every retry starts again from the executions as recorded."""
        backoff = 0.1
        retrying = False
        while True:
            try:
                await asyncio.to_thread(self._record_now, batch, retrying)
                return
            except Exception:
                retrying = True
                log.exception("recording_outcomes_failed", size=len(batch), backoff=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _record_now(self, batch: Sequence[Finished], from_fresh_state: bool) -> None:
        if from_fresh_state:
            batch = [self._fresh(finished) for finished in batch]
        in_batch_or_one_by_one(self._executions.finish, batch, self._fresh)

    def _fresh(self, finished: Finished) -> Finished:
        attempt, result = finished
        return self._executions.reload(attempt), result


def _count_finished(result: AttemptResult) -> None:
    ATTEMPTS_IN_FLIGHT.dec()
    ATTEMPT_SECONDS.observe(result.duration_ms / 1000)
    outcome = "succeeded" if result.succeeded else "failed"
    kind = result.error_kind.value if result.error_kind else ""
    ATTEMPTS_FINISHED.labels(outcome, kind).inc()
