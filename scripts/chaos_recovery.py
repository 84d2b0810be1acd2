"""The chaos run's recovery figures: how fast calls completed again after each fault, and
which attempts a fault caught in flight (from the audit's completions and attempts)."""

from __future__ import annotations

import bisect
from typing import Any, Protocol

from _harness import rounded
from chaos_audit import Attempt

RECOVERED_FRACTION = 0.8
BASELINE_SECONDS = 5.0
STRAGGLER_SECONDS = 10.0  # an attempt in flight at a fault that ended this much later


class Fault(Protocol):
    at: float  # time.time() the fault began
    until: float  # ... and ended (process gone, database back)


def rate(times: list[float], start: float, end: float) -> float:
    if end <= start:
        return 0.0
    return (bisect.bisect_left(times, end) - bisect.bisect_left(times, start)) / (end - start)


def per_second(times: list[float], began: float) -> list[int]:
    """How many calls ended in each second from ``began`` on."""
    counts: list[int] = []
    for moment in times:
        second = max(0, int(moment - began))
        counts.extend([0] * (second + 1 - len(counts)))
        counts[second] += 1
    return counts


def recovery_of(fault: Fault, completions: list[float], attempts: list[Attempt],
                began: float, since: float) -> dict[str, Any]:
    """How completions recovered after ``fault``; which attempts it caught in flight (those
    started after ``since``, the previous fault, so each straggler is counted once)."""
    baseline = rate(completions, fault.at - BASELINE_SECONDS, fault.at)
    found: dict[str, Any] = {
        "at_s": rounded(fault.at - began),
        "duration_s": rounded(fault.until - fault.at, 3),
        "baseline_per_s": rounded(baseline, 1),
        "recovery_s": None,
        "lowest_per_s": None,
    }
    if completions and baseline > 0:
        step = 0.1
        t = fault.until
        lowest = rate(completions, fault.at, fault.at + 1.0)
        while t + 1.0 <= completions[-1] + step:
            current = rate(completions, t, t + 1.0)
            if current >= RECOVERED_FRACTION * baseline:
                found["recovery_s"] = round(t - fault.until, 2)
                break
            lowest = min(lowest, current)
            t += step
        found["lowest_per_s"] = rounded(lowest, 1)
    in_flight = [a for a in attempts if since < a.started <= fault.at
                 and (a.finished is None or a.finished > fault.at)]
    ends = [a.finished for a in in_flight if a.finished is not None]
    found["in_flight_at_fault"] = len(in_flight)
    found["last_in_flight_done_s"] = rounded(max(ends) - fault.at) if ends else None
    late = sorted((a for a in in_flight if a.finished is not None
                   and a.finished - fault.at > STRAGGLER_SECONDS),
                  key=lambda a: -(a.finished or 0.0))
    found["stragglers"] = len(late)  # waited for a lease to end
    found["straggler_examples"] = [f"{a.call_id}:{a.attempt}" for a in late[:3]]
    return found
