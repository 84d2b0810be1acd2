"""The benchmark's readings of /proc (scripts/bench.py): each process's CPU seconds, voluntary
context switches (wake-ups) and peak RSS, the machine's busy CPU seconds, and the PostgreSQL
server's processes (when visible), with their CPU split by what each process is.

PostgreSQL's CPU is the server's whole process tree: the postmaster's own time, the time of
every child alive at a reading (backends, WAL writer, checkpointer, autovacuum...), and the
time of the children that exited between two readings, which the postmaster has reaped and the
kernel has added to its ``cutime``/``cstime``. Over a phase: (postmaster own + reaped
children) at the end minus at the start, plus each live child's time at the end minus its time
at the start (0 for a child born during the phase); a child alive at the start that exited
during the phase is in the reaped time in full, so its time at the start is subtracted. That
is exact but for one backend exiting between the reading of the children and the reading of
the postmaster (counted twice: a few ms at most). Live children are split by their process
title (``postgres: [cluster: ]user database client state``): backends of the bench's database,
the bench's own connections (by backend pid), backends of other databases (other work on a
shared server: not duecall's), background processes; what exited during the phase cannot be
split and is shown as ``exited``."""

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


def voluntary_switches(pid: int) -> dict[int, int] | None:
    """Voluntary context switches of each of the process's threads (each is a wait that ended
    in a wake-up: a poll, a lock, a sleep), by thread id."""
    counts: dict[int, int] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    counts[int(task.name)] = int(line.split()[1])
                    break
        except (OSError, ValueError, IndexError):
            continue
    return counts


def switches_between(before: dict[int, int] | None, after: dict[int, int] | None) -> int | None:
    """Voluntary context switches between two readings: of the threads alive at the second
    (a thread that ended in between takes its last switches with it: a slight undercount)."""
    if before is None or after is None:
        return None
    return sum(count - before.get(tid, 0) for tid, count in after.items())


def process_title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            "utf-8", "replace").strip()
    except OSError:
        return ""


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


BACKGROUND = ("checkpointer", "background writer", "walwriter", "autovacuum", "logical "
              "replication", "stats collector", "archiver", "walsender", "walreceiver",
              "startup", "io worker")


def postgres_role(title: str, database: str) -> str:
    """``this database``, ``other databases`` or ``background`` from a server process title."""
    rest = title.removeprefix("postgres:").strip()
    head, sep, tail = rest.partition(": ")  # Debian's "15/main: " cluster prefix
    if sep and "/" in head and " " not in head:
        rest = tail
    if rest.startswith(BACKGROUND):
        return "background"
    words = rest.split()
    if len(words) >= 2 and words[1] == database:
        return "this database"
    return "other databases" if len(words) >= 3 else "background"


@dataclass
class PostgresSnapshot:
    own_and_reaped: float
    children: dict[int, tuple[float, str]]  # pid -> (CPU seconds, title)


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

    def snapshot(self) -> PostgresSnapshot | None:
        """The children's CPU first, then the postmaster's own and reaped time (so that a
        child exiting in between is counted twice rather than lost)."""
        if self.postmaster is None:
            return None
        children = {}
        for pid in children_of(self.postmaster):
            cpu = cpu_seconds(pid)
            if cpu is not None:
                children[pid] = (cpu, process_title(pid))
        own = cpu_seconds(self.postmaster, waited_children=True)
        return None if own is None else PostgresSnapshot(own, children)

    @staticmethod
    def breakdown(before: PostgresSnapshot | None, after: PostgresSnapshot | None,
                  database: str, bench_pids: set[int]) -> dict[str, float] | None:
        """The server's CPU seconds between two snapshots, in total and by kind of process
        (see the module docstring): ``total``, ``this database``, ``bench connections``,
        ``other databases``, ``background``, ``exited``, and ``duecall`` = total - bench
        connections - other databases (the backends, background work and exited processes
        that duecall's processes caused; the background work of others, if any, included)."""
        if before is None or after is None:
            return None
        parts = dict.fromkeys(("this database", "bench connections", "other databases",
                               "background"), 0.0)
        exited = after.own_and_reaped - before.own_and_reaped
        for pid, (cpu, _title) in before.children.items():
            if pid not in after.children:
                exited -= cpu
        for pid, (cpu, title) in after.children.items():
            start = before.children.get(pid, (0.0, ""))[0]
            kind = ("bench connections" if pid in bench_pids
                    else postgres_role(title, database))
            parts[kind] += cpu - start
        parts["exited"] = exited
        total = sum(parts.values())
        out = {"total": total, **parts,
               "duecall": total - parts["bench connections"] - parts["other databases"]}
        return {k: round(v, 3) for k, v in out.items()}

    def backends(self) -> dict[int, str]:
        """Live children: pid -> process title."""
        if self.postmaster is None:
            return {}
        return {pid: process_title(pid) for pid in children_of(self.postmaster)}

    @classmethod
    def find(cls, conn: psycopg.Connection[Any]) -> PostgresProcesses:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        backend = int(row[0]) if row else 0
        postmaster = parent_of(backend) if backend else None
        if postmaster and process_name(postmaster).startswith(("postgres", "postmaster")):
            return cls(postmaster, f"postmaster pid {postmaster} (parent of backend {backend})")
        return cls(None, "server processes not visible on this machine: CPU n/a")
