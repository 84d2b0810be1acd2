"""Group commit for single submits.

Every transaction on the event store takes its write lock and waits for a commit flush, so a
submit per transaction caps an API process at a few hundred submits a second however many
threads it has. Instead, request threads queue their commands and one writer thread records
whatever is queued in one transaction (``submit_many``) and hands each thread its result. No
request waits for a batch to fill: a batch is just what arrived while the last one committed.

While the database is away a batch fails as a whole (``unavailable`` errors): splitting it would
only make every command wait for the database again. A submit that is not answered within its
timeout is withdrawn if it has not been handed to the writer yet (``NotRecordedError``: nothing
was recorded, the client may try again); once the writer has it, its real outcome is awaited,
so an answer never says "not recorded" about a call that was.
"""

import asyncio
import queue
import threading
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
    ) -> None:
        """``unavailable``: errors that mean the database is away (fail the whole batch)."""
        self._submit_many = submit_many
        self._max_batch = max_batch
        self._unavailable = unavailable
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
        thread waits for it)."""
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

    def _record(self, batch: list[tuple[SubmitServiceCall, Future[SubmittedCalls]]]) -> None:
        try:
            results = self._submit_many([command for command, _ in batch])
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
