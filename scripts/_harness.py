"""What the scripts' command lines and records share: their options' help format, ``--env``
items, percentiles, and the machine's description for the record. The processes, databases
and targets they start are the ``harness`` package's (shared with the tests).

Imported by the scripts as ``_harness`` (they run as ``python scripts/<name>.py``, so this
directory is on ``sys.path``). Importing it puts the repository root on ``sys.path`` too, so
that the scripts can import ``harness`` and duecall's own packages: import it first.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


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


def add_stack_options(parser: argparse.ArgumentParser) -> Any:
    """The options of a run's stack (scripts/chaos_stack.py, one per phase): the database, the
    processes' extra environment, their start-up time. Returns the group, for more."""
    stack = parser.add_argument_group("the stack and output")
    stack.add_argument("--database-url", default=None,
                       help="an external PostgreSQL server (a fresh database is made there "
                       "and dropped); default: a private embedded server")
    stack.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                       help="extra environment of the duecall processes (repeatable)")
    stack.add_argument("--start-timeout", type=float, default=60.0,
                       help="s a process may take to come up")
    return stack


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


# -- a run of phases ------------------------------------------------------------------------------

Phase = Callable[[argparse.Namespace, Path], dict[str, Any]]


def run_phases(args: argparse.Namespace, phases: Mapping[str, Phase], log_dir: Path,
               packages: Sequence[str]) -> tuple[dict[str, Any], int]:
    """Run ``args.phase_list``'s phases in order, each with its logs in ``log_dir/<phase>``;
    the result for the record (the machine, the arguments, each phase's figures, the error
    that stopped the run, if any) and the exit code: 0, or 2 on an error."""
    from harness.processes import HarnessError, console

    result: dict[str, Any] = {
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine_info(packages),
        "logs": str(log_dir),
        "phases": {},
        "error": None,
    }
    code = 0
    try:
        for phase in args.phase_list:
            result["phases"][phase] = phases[phase](args, log_dir / phase)
    except (HarnessError, KeyboardInterrupt) as error:
        result["error"] = f"{type(error).__name__}: {error}"
        code = 2
    except Exception as error:
        result["error"] = f"{type(error).__name__}: {error}"
        console.print_exception()
        code = 2
    result["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return result, code
