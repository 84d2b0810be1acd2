"""py-spy on every duecall process during each phase (scripts/bench.py ``--profile DIR``).

For each phase and each ``duecall`` process (api, worker, projections), ``py-spy record --gil
--nonblocking -r RATE -f raw`` runs from the phase's start to its end and writes
``DIR/<phase>-<process>.txt`` (collapsed stacks: ``frame;frame;... count``, root first; open it
with flamegraph.pl, speedscope or ``summarise``). ``--gil`` samples only the thread holding the
GIL, so a sample is Python CPU time (1 / RATE s; code that runs without the GIL, such as libpq
or the kernel, is not in it: compare the samples with the process's CPU from /proc).
``--nonblocking`` reads the process without stopping it, which disturbs it least.

py-spy is not a dependency of duecall: install it where you like (``pip install py-spy``) and
give its path with ``--py-spy`` or put it on PATH.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench_stack import BenchError, Stack

DUECALL_ROLES = ("api", "worker", "projections")
_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
# frames at the root of every stack of a thread (start-up, the thread, the event loop, the
# supervisor's retry loop, the ASGI layers): left out of the inclusive ranking, which they would
# top saying nothing
GENERIC = ("threading.py", "<string>", "asyncio/runners.py", "asyncio/base_events.py",
           "asyncio/events.py", "typer/", "click/", "uvicorn/_compat.py", "uvicorn/server.py",
           "interfaces/cli.py", "interfaces/cli_errors.py", "interfaces/api/serving.py",
           "concurrent/futures/thread.py", "application/supervision.py",
           "interfaces/worker_process.py", "interfaces/cli_projections.py",
           "starlette/middleware/", "starlette/_exception_handler.py", "starlette/routing.py",
           "starlette/applications.py", "fastapi/applications.py",
           "uvicorn/middleware/", "fastapi/middleware/", "fastapi/_body_limit.py",
           "fastapi/telemetry/", "interfaces/api/metrics.py", "interfaces/api/body_limit.py")
OURS = ("application/", "infrastructure/", "projections/", "interfaces/", "domain/")


def find_py_spy(given: str | None) -> str:
    for candidate in (given, shutil.which("py-spy"), str(Path(sys.executable).with_name("py-spy"))):
        if candidate and Path(candidate).exists():
            return candidate
    raise BenchError("--profile needs py-spy: pip install py-spy (anywhere) and give its path "
                     "with --py-spy, or put it on PATH")


class Profilers:
    """py-spy recorders attached to the duecall processes for one phase."""

    def __init__(self, py_spy: str, out_dir: Path, rate: int) -> None:
        self.py_spy = py_spy
        self.out_dir = out_dir
        self.rate = rate
        self.running: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def start(self, stack: Stack, phase: str) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for proc in stack.processes.all:
            if proc.role not in DUECALL_ROLES:
                continue
            out = self.out_dir / f"{phase}-{proc.name}.txt"
            log = (self.out_dir / f"{phase}-{proc.name}.log").open("wb")
            argv = [self.py_spy, "record", "--pid", str(proc.pid), "--gil", "--nonblocking",
                    "-r", str(self.rate), "-f", "raw", "-o", str(out)]
            self.running[proc.name] = (subprocess.Popen(argv, stdout=log, stderr=log), out)
            log.close()

    def stop(self, calls: int | None) -> dict[str, Any]:
        """Stop every recorder (SIGINT: py-spy writes its file) and summarise each profile."""
        return stop_watchers(self.running, lambda path: summarise(path, self.rate, calls))


Watchers = dict[str, tuple["subprocess.Popen[bytes]", Path]]


def stop_watchers(running: Watchers, read: Any) -> dict[str, Any]:
    """Stop watcher processes (py-spy, strace) with SIGINT, so that each writes its file, and
    ``read`` each file, by the watched process's name; ``running`` is emptied."""
    for popen, _ in running.values():
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(signal.SIGINT)
    out: dict[str, Any] = {}
    for name, (popen, path) in running.items():
        try:
            popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            popen.kill()
        out[name] = read(path) if path.exists() else {
            "error": f"the watcher wrote nothing (exit {popen.returncode}); see "
                     f"{path.with_suffix('.log')}"}
    running.clear()
    return out


def _function(frame: str) -> str:
    """``name (file:line)`` → ``name (file)``: one entry per function, not per line (py-spy
    names files relative to their sys.path entry: ``psycopg/cursor.py``)."""
    match = _FRAME.match(frame)
    return f"{match['name']} ({match['file']})" if match else frame


def _generic(function: str) -> bool:
    file = function.rpartition(" (")[2]
    return file.startswith(GENERIC) or "run_asgi" in function


def summarise(path: Path, rate: int, calls: int | None, top: int = 15) -> dict[str, Any]:
    """Samples in all; the functions with most samples of their own and with most samples in
    them or below (each function counted once per stack; start-up, thread and event-loop frames
    left out), as ms of GIL-holding time (and per call). On a busy machine a thread can hold the
    GIL while it waits for a CPU, so ``share`` is the figure to trust: bench.py also gives each
    row ``ms_per_call_cpu``, its share of the process's CPU per call from /proc."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";")
                  if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for function in set(frames):
            if not _generic(function):
                inclusive[function] += count
                if function.rpartition(" (")[2].startswith(OURS):
                    ours[function] += count

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": f, "samples": n, "share": round(n / total, 3),
                 "ms": round(n * 1000 / rate, 1),
                 "ms_per_call": round(n * 1000 / rate / calls, 4) if calls else None}
                for f, n in counter.most_common(top)]

    return {"file": str(path), "rate_hz": rate, "samples": total,
            "python_cpu_ms": round(total * 1000 / rate, 1),
            "python_cpu_ms_per_call": round(total * 1000 / rate / calls, 3) if calls else None,
            "top_own": rows(own), "top_inclusive": rows(inclusive),
            "top_inclusive_duecall": rows(ours)}
