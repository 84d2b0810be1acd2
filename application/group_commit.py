"""Group commit for single submits.

Every transaction on the event store takes its write lock and waits for a commit flush, so a
submit per transaction caps an API process at a few hundred submits a second however many
threads it has. Instead, request threads queue their commands and one writer thread records
whatever is queued in one transaction (``submit_many``) and hands each thread its result. No
request waits for a batch to fill: a batch is just what arrived while the last one committed.
"""

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import structlog

from application.commands import SubmitServiceCall
from application.service_calls import Submissions

log = structlog.get_logger(__name__)

SubmitMany = Callable[[Sequence[SubmitServiceCall]], Submissions]


class GroupCommit:
    def __init__(self, submit_many: SubmitMany, max_batch: int = 250) -> None:
        self._submit_many = submit_many
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[SubmitServiceCall, Future[Submissions]]] = (
            queue.SimpleQueue()
        )
        self._writer = threading.Thread(target=self._write, name="group-commit", daemon=True)
        self._writer.start()

    def submit(self, command: SubmitServiceCall, timeout: float = 30.0) -> Submissions:
        """Record the command with whatever else is waiting; its own result (with the batch's
        log position) or its own error."""
        future: Future[Submissions] = Future()
        self._queue.put((command, future))
        return future.result(timeout)

    def _write(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._record(batch)

    def _record(self, batch: list[tuple[SubmitServiceCall, Future[Submissions]]]) -> None:
        try:
            results = self._submit_many([command for command, _ in batch])
        except Exception as error:
            if len(batch) == 1:
                batch[0][1].set_exception(error)
                return
            log.info("group_commit_split", size=len(batch), error=type(error).__name__)
            for item in batch:  # one bad command must not fail the others
                self._record([item])
            return
        for (_, future), result in zip(batch, results, strict=True):
            own = Submissions([result])
            own.position = results.position
            future.set_result(own)
