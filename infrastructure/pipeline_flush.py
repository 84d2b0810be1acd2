"""Work around a psycopg pipeline hang: ``Pipeline.sync()`` can stop before its output is sent.

psycopg (3.3.9 and its main branch as of 2026-07) sends a pipeline's queued commands in
``pipeline_communicate``: on each write-ready it calls ``PQflush()`` once, ignores whether
output is still buffered, and leaves as soon as no command is queued. ``sync()`` then waits
to *read* the results. When the last ``PQflush()`` could not hand everything to the kernel
(a statement larger than the socket's send buffer can take at that moment), the rest stays in
libpq's output buffer: the server waits for the end of the statement (``ClientRead``), the
client waits for results, and neither moves again.

The threshold depends on the socket: a Unix socket's send buffer is ~208 KiB here, so on the
embedded server an event of ~0.8 MB (or less, with other statements in the same insert)
hung the recorder's pipelined insert; TCP buffers grow to 4 MiB here, so over TCP the same
insert hung at 64 MiB. It is not specific to Unix sockets.

The fix is the one psycopg already applies when it exits a pipeline (``_fetch_gen(flush=True)``
sends a flush request and then ``send()``s): finish flushing — waiting for the socket to be
writable, reading whatever the server sends meanwhile — before waiting for results.
"""

from typing import Any

from psycopg import generators
from psycopg._pipeline_base import BasePipeline

_PATCHED = "_duecall_flushes_before_fetch"


def _sync_gen(self: Any) -> Any:
    self._enqueue_sync()
    yield from self._communicate_gen()
    yield from generators.send(self.pgconn)  # flush until libpq's output buffer is empty
    yield from self._fetch_gen(flush=False)


def install() -> None:
    """Make every psycopg pipeline (sync and async) flush all output before it waits for the
    results of a sync. Idempotent."""
    if getattr(BasePipeline, _PATCHED, False):
        return
    if not hasattr(BasePipeline, "_sync_gen"):  # psycopg changed: look at this module again
        raise RuntimeError("psycopg's BasePipeline._sync_gen is gone; review pipeline_flush.py")
    BasePipeline._sync_gen = _sync_gen  # type: ignore[method-assign]
    setattr(BasePipeline, _PATCHED, True)
