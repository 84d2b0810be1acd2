"""Group commit for single submits.

Every transaction on the event store takes its write lock and waits for a commit flush, so a
submit per transaction caps an API process at a few hundred submits a second however many
threads it has. Instead, request threads queue their commands and one writer thread records
whatever is queued in one transaction (``submit_many``) and hands each thread its result. No
request waits for a batch to fill: a batch is just what arrived while the last one committed.

A submit from the event loop that is alone (no other submit arrived with it, nothing queued,
the writer idle) is recorded at once on the loop's own thread: handing it to the writer and
back costs two thread wake-ups, the GIL passed to and fro, and CPU besides. That holds the loop
for one single-call transaction (a millisecond or two), so it is done only while transactions
are quick: after one took longer than ``inline_limit`` seconds or found the database away,
submits go to the writer again until one of its transactions is quick.

While the database is away a batch fails as a whole (``unavailable`` errors): splitting it would
only make every command wait for the database again. A submit that is not answered within its
timeout is withdrawn if it has not been handed to the writer yet (``NotRecordedError``: nothing
was recorded, the client may try again); once the writer has it, its real outcome is awaited,
so an answer never says "not recorded" about a call that was.
"""

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError

import structlog

from application.commands import SubmitServiceCall
from application.service_calls import SubmittedCalls

log = structlog.get_logger(__name__)

SubmitMany = Callable[[Sequence[SubmitServiceCall]], SubmittedCalls]


class NotRecordedError(Exception):
    """The submit waited too long for the writer (the database is slow or away); it was
    withdrawn before anything was recorded."""


class GroupCommit:
    def __init__(
        self,
        submit_many: SubmitMany,
        max_batch: int = 250,
        unavailable: tuple[type[Exception], ...] = (),
        inline_limit: float | None = 0.02,
    ) -> None:
        """``unavailable``: errors that mean the database is away (fail the whole batch).
        ``inline_limit``: how long a transaction may take for lone event-loop submits to be
        recorded on the loop's thread (None: never, always the writer)."""
        self._submit_many = submit_many
        self._max_batch = max_batch
        self._unavailable = unavailable
        self._inline_limit = inline_limit
        self._quick = inline_limit is not None  # the last transaction was quick and succeeded
        self._arriving = 0  # event-loop submits between arriving and choosing a path
        self._recording = threading.Lock()  # held while a transaction is recorded
        self._queue: queue.SimpleQueue[tuple[SubmitServiceCall, Future[SubmittedCalls]]] = (
            queue.SimpleQueue()
        )
        self._writer = threading.Thread(target=self._write, name="group-commit", daemon=True)
        self._writer.start()

    def submit(self, command: SubmitServiceCall, timeout: float = 30.0) -> SubmittedCalls:
        """Record the command with whatever else is waiting; its own result (with the batch's
        log position) or its own error."""
        future = self._enqueue(command)
        try:
            return future.result(timeout)
        except FutureTimeoutError:
            _withdraw(future, timeout)
            return future.result()  # the writer has it: its outcome, whatever it is

    async def submit_async(
        self, command: SubmitServiceCall, timeout: float = 30.0
    ) -> SubmittedCalls:
        """``submit`` for a coroutine: the event loop goes on while the batch commits (no
        thread waits for it), unless the submit is alone and is recorded at once (above)."""
        self._arriving += 1
        try:
            await asyncio.sleep(0)  # submits that arrived with this one show up meanwhile
        finally:
            self._arriving -= 1
        if (
            self._quick
            and not self._arriving
            and self._queue.empty()
            and self._recording.acquire(blocking=False)
        ):
            try:
                return self._timed([command])
            finally:
                self._recording.release()
        future = self._enqueue(command)
        waiting = asyncio.wrap_future(future)
        try:
            return await asyncio.wait_for(asyncio.shield(waiting), timeout)
        except TimeoutError:
            _withdraw(future, timeout)
            return await waiting  # the writer has it: its outcome, whatever it is

    def _enqueue(self, command: SubmitServiceCall) -> Future[SubmittedCalls]:
        future: Future[SubmittedCalls] = Future()
        self._queue.put((command, future))
        return future

    def _write(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            # withdrawn submits drop out; the rest can no longer be withdrawn
            batch = [item for item in batch if item[1].set_running_or_notify_cancel()]
            if batch:
                self._record(batch)

    def _timed(self, commands: list[SubmitServiceCall]) -> SubmittedCalls:
        """``submit_many(commands)``, noting whether the database answered quickly (an answer
        within ``inline_limit``, an error or not, other than ``unavailable``)."""
        started = time.monotonic()
        answered = False
        try:
            results = self._submit_many(commands)
            answered = True
            return results
        except self._unavailable:
            raise
        except Exception:
            answered = True
            raise
        finally:
            self._quick = (
                answered
                and self._inline_limit is not None
                and time.monotonic() - started <= self._inline_limit
            )

    def _record(self, batch: list[tuple[SubmitServiceCall, Future[SubmittedCalls]]]) -> None:
        try:
            with self._recording:
                results = self._timed([command for command, _ in batch])
        except Exception as error:
            if len(batch) == 1 or isinstance(error, self._unavailable):
                for _, future in batch:
                    future.set_exception(error)
                return
            log.info("group_commit_split", size=len(batch), error=type(error).__name__)
            for item in batch:  # one bad command must not fail the others
                self._record([item])
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(SubmittedCalls([result], results.position))


def _withdraw(future: Future[SubmittedCalls], timeout: float) -> None:
    """Raise ``NotRecordedError`` if the writer never took the submit (it never will now)."""
    if future.cancel():  # the writer never took it: nothing is recorded
        raise NotRecordedError(
            f"the submit was not recorded within {timeout:g} s; try again"
        ) from None
