"""Garbage-collector settings for a process that runs the workers or the read models.

A worker allocates many short-lived objects per call (events, messages, rows), and a read
model per event folded (rows, decoded events), and each keeps a large, long-lived heap
(modules, caches, aggregates held across a batch, the decoded events the folds share).
With CPython's defaults (700, 10, 10) objects alive mid-batch are promoted early and full
collections run every second or so, each scanning the whole heap: lost throughput, and the
tail of the timer's lateness. Freezing what start-up built (out of the collector's sight)
and collecting the young generation less often keeps the pauses few and short (figures in
docs/performance.md). Cycles are still collected, only less often.
"""

import gc

THRESHOLDS = (20_000, 20, 20)


def tune() -> None:
    """Freeze the objects built so far and collect less often (see the module)."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
