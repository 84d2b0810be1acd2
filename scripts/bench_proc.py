"""The benchmark's readings of /proc (scripts/bench.py): each process's CPU seconds and peak
RSS, the machine's busy CPU seconds, and the PostgreSQL server's processes (when visible)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MACHINE = "machine busy"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()  # fields from 3 (state) on


def cpu_seconds(pid: int, *, waited_children: bool = False) -> float | None:
    """utime + stime of a process (all its threads); plus its waited-for children's."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    ticks = int(fields[11]) + int(fields[12])
    if waited_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def children_of(ppid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and parent_of(int(entry.name)) == ppid:
            found.append(int(entry.name))
    return found


def machine_busy_seconds() -> float | None:
    """CPU seconds all CPUs spent busy since boot (/proc/stat: all but idle and iowait)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS


def status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@dataclass
class PostgresProcesses:
    """The server's postmaster, when its processes are visible here (else CPU is n/a)."""

    postmaster: int | None
    how: str

    def cpu(self) -> float | None:
        """Postmaster (with the backends it has reaped) plus every live child process."""
        if self.postmaster is None:
            return None
        own = cpu_seconds(self.postmaster, waited_children=True)
        if own is None:
            return None
        return own + sum(cpu_seconds(c) or 0.0 for c in children_of(self.postmaster))

    @classmethod
    def find(cls, conn: psycopg.Connection[Any]) -> PostgresProcesses:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        backend = int(row[0]) if row else 0
        postmaster = parent_of(backend) if backend else None
        if postmaster and process_name(postmaster).startswith(("postgres", "postmaster")):
            return cls(postmaster, f"postmaster pid {postmaster} (parent of backend {backend})")
        return cls(None, "server processes not visible on this machine: CPU n/a")
