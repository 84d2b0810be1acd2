"""The chaos run's faults (scripts/chaos.py): when each happens (planned from the seed), and
the injector that SIGKILLs and SIGTERMs workers and restarts PostgreSQL while the load runs."""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from _harness import rounded
from chaos_stack import ChaosError, Stack

from harness.processes import Managed, console

# -- faults -------------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str  # sigkill | pg_restart | sigterm | api_kill
    planned_at_s: float
    at: float = 0.0  # time.time() it began
    until: float = 0.0  # time.time() it was over (process gone, database answering)
    detail: dict[str, Any] = field(default_factory=dict)


def plan_faults(args: argparse.Namespace, restartable: bool) -> list[Fault]:
    submit_seconds = args.calls / args.rate
    faults: list[Fault] = []
    busy: list[tuple[float, float]] = []
    if restartable and args.pg_restart_at >= 0:
        at = submit_seconds * args.pg_restart_at
        faults.append(Fault("pg_restart", at))
        busy.append((at - args.quiet_window, at + args.pg_down + 2 + args.quiet_window))
    if args.sigterm_at >= 0:
        at = submit_seconds * args.sigterm_at
        faults.append(Fault("sigterm", at))
        busy.append((at - args.quiet_window, at + args.quiet_window))
    if args.api_kill_at >= 0:
        at = submit_seconds * args.api_kill_at
        faults.append(Fault("api_kill", at))
        busy.append((at - args.quiet_window, at + args.quiet_window))
    if args.kill_interval > 0:
        at = min(args.kill_interval / 2, submit_seconds / 4)
        while at < submit_seconds:
            if not any(low <= at <= high for low, high in busy):
                faults.append(Fault("sigkill", at))
            at += args.kill_interval
    return sorted(faults, key=lambda f: f.planned_at_s)


class FaultInjector:
    def __init__(self, args: argparse.Namespace, stack: Stack, faults: list[Fault]) -> None:
        self._args = args
        self._stack = stack
        self.faults = faults
        self._rng = random.Random(args.seed + 1)
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.graceful: list[dict[str, Any]] = []

    def run(self, began: float) -> None:
        try:
            for fault in self.faults:
                if self.stopped.wait(max(0.0, began + fault.planned_at_s - time.time())):
                    return
                getattr(self, f"_{fault.kind}")(fault)
                console.print(f"  fault {fault.kind} at {fault.at - began:.1f} s: "
                              f"{json.dumps(fault.detail)}")
        except BaseException as error:
            self.error = error

    def _victim(self) -> Managed:
        live = self._stack.live_workers()
        if not live:
            raise ChaosError("no live worker to inject a fault into")
        return self._rng.choice(live)

    def _sigkill(self, fault: Fault) -> None:
        victim = self._victim()
        fault.at = time.time()
        victim.popen.kill()
        victim.popen.wait(timeout=10)
        fault.until = time.time()
        replacement = self._stack.start_worker()
        fault.detail = {"worker": victim.name, "pid": victim.pid,
                        "replacement": replacement.name}

    def _sigterm(self, fault: Fault) -> None:
        victim = self._victim()
        fault.at = time.time()
        replacement = self._stack.start_worker()  # as a rolling restart would
        seconds = self._stack.terminate(victim, timeout=self._shutdown_timeout() + 30)
        fault.until = time.time()
        fault.detail = {"worker": victim.name, "pid": victim.pid, "exit_s": rounded(seconds, 3),
                        "returncode": victim.popen.returncode,
                        "shutdown_timeout_s": self._shutdown_timeout(),
                        "replacement": replacement.name}
        self.graceful.append({"under_load": True, **fault.detail})

    def _api_kill(self, fault: Fault) -> None:
        """SIGKILL the last API process, not replaced: the clients go on through the others."""
        victim = self._stack.apis[-1]
        fault.at = time.time()
        victim.popen.kill()
        victim.popen.wait(timeout=10)
        fault.until = time.time()
        fault.detail = {"api": victim.name, "pid": victim.pid,
                        "left": [a.name for a in self._stack.apis if a.alive()]}

    def _pg_restart(self, fault: Fault) -> None:
        fault.at = time.time()
        steps = self._stack.db.restart(self._args.pg_down)
        fault.until = time.time()
        fault.detail = {k: rounded(v, 3) for k, v in steps.items()}

    def _shutdown_timeout(self) -> float:
        return float(self._stack.env.get("DUECALL_SHUTDOWN_TIMEOUT_SECONDS", "30"))


