"""What scripts/bench.py and scripts/chaos.py share: the duecall processes they start and stop,
their options' help format, and small helpers (a free port, percentiles, the machine's
description for the record).

Imported by those scripts as ``_harness`` (they run as ``python scripts/<name>.py``, so this
directory is on ``sys.path``). Importing it puts the repository root on ``sys.path`` too, so
that the scripts can import duecall's own packages.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

HOST = "127.0.0.1"
ENTRY = "from interfaces.cli import main; main()"


# -- options --------------------------------------------------------------------------------------


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show "(default: ...)" only where the default says something."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, []):
            return action.help
        return super()._get_help_string(action)


def check_env_items(parser: argparse.ArgumentParser, items: Sequence[str]) -> None:
    """Reject an ``--env`` item that is not KEY=VALUE (``parser.error`` exits)."""
    for item in items:
        if "=" not in item:
            parser.error(f"--env {item!r} is not KEY=VALUE")


def apply_env_items(env: dict[str, str], items: Sequence[str]) -> None:
    """Set each ``--env`` KEY=VALUE item in ``env``."""
    for item in items:
        key, _, value = item.partition("=")
        env[key.strip()] = value


# -- small helpers --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear interpolation between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def git(*args: str) -> str:
    try:
        result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip()


def machine_info(packages: Sequence[str], *, cpus_usable: bool = False,
                 uncommitted_files: bool = False) -> dict[str, Any]:
    """The machine, the commit and the ``packages``' versions, for the record."""
    info: dict[str, Any] = {"nproc": os.cpu_count()}
    if cpus_usable:
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    info.update({
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    })
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.partition(":")[2].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["mem_total_mb"] = int(line.split()[1]) // 1024
    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    info["duecall_commit"] = commit + ("+dirty" if dirty else "")
    if uncommitted_files:
        info["duecall_uncommitted_files"] = [line[3:] for line in dirty.splitlines()]
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        info["versions"] = {p: version(p) for p in packages}
    return info


# -- processes ------------------------------------------------------------------------------------


@dataclass
class Managed:
    name: str
    role: str  # api | worker | projections | target
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def spawn(log_dir: Path, name: str, role: str, argv: list[str], env: dict[str, str],
          port: int | None = None) -> Managed:
    """Start ``argv`` in the repository root, in a session of its own, its stdout and stderr
    appended to ``<log_dir>/<name>.log`` (``log_dir`` must exist)."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    return Managed(name, role, popen, log_path, port)


def stop_all(procs: Sequence[Managed], timeout: float,
             on_kill: Callable[[Managed], None] | None = None) -> None:
    """SIGTERM every live one, wait up to ``timeout`` s in total, SIGKILL what is left (calling
    ``on_kill`` first)."""
    for proc in procs:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            if on_kill is not None:
                on_kill(proc)
            proc.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)
