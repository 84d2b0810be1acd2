"""strace on every duecall process during each phase (scripts/bench.py ``--syscalls DIR``): round
trips to PostgreSQL and wake-ups, counted from the system calls.

``strace -f -qq -yy -e trace=<network, read/write, waits> -p PID -o DIR/<phase>-<process>.strace``
runs from the phase's start to its end. Each line is classified by the file descriptor's peer
(``-yy``): PostgreSQL (a TCP peer on the database's port: use a TCP ``DATABASE_URL``; over the
embedded server's Unix socket the PostgreSQL counts are 0), a one-byte write to a Unix socket
pair or an eventfd (how one thread wakes an event loop: asyncio's self-pipe, libuv's eventfd),
or anything else
(the HTTP client and server, the event loops' other reads). Counts:

- ``pg_sends``: sendto/write/sendmsg to PostgreSQL, each one flush of libpq's output buffer: a
  round trip, or a pipeline's batch of statements sent at once (a large statement can take
  more than one);
- ``pg_recvs``: recvfrom/read/recvmsg from PostgreSQL (including the ones that found nothing);
- ``loop_wakeups``: one-byte writes to a Unix socket pair or 8-byte writes to an eventfd (a
  thread waking an event loop);
- ``io_waits``: poll, ppoll, select, epoll_wait and epoll_pwait calls (a thread waiting for a
  socket or a timer, then woken);
- ``futex``: futex calls (locks, condition variables, the GIL's hand-offs, queue gets).

ptrace stops the process at every system call: the phase's CPU and latency figures are
disturbed, so count in a run of its own. strace must be installed (Debian: strace).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from bench_profile import stop_watchers
from bench_stack import BenchError, Stack
from psycopg.conninfo import conninfo_to_dict

DUECALL_ROLES = ("api", "worker", "projections")
TRACED = ("sendto,recvfrom,sendmsg,recvmsg,read,write,writev,readv,poll,ppoll,select,pselect6,"
          "epoll_wait,epoll_pwait,futex")
WAITS = {"poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait"}
SENDS = {"sendto", "sendmsg", "write", "writev"}
KEYS = ("pg_sends", "pg_recvs", "loop_wakeups", "io_waits", "futex", "other_sends",
        "other_recvs")
RECVS = {"recvfrom", "recvmsg", "read", "readv"}
_LINE = re.compile(r"^\d+\s+(?P<call>\w+)\((?P<fd>\d+)?"
                   r"(?:<(?P<peer>[A-Z0-9-]+:\[[^\]]*\]|[^>]*)>)?(?P<rest>.*)$")


class Tracers:
    def __init__(self, out_dir: Path, database_url: str) -> None:
        strace = shutil.which("strace")
        if strace is None:
            raise BenchError("--syscalls needs strace (apt-get install strace)")
        self.strace = strace
        self.out_dir = out_dir
        self.db_port = str(conninfo_to_dict(database_url).get("port") or "5432")
        self.running: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def start(self, stack: Stack, phase: str) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for proc in stack.processes.all:
            if proc.role not in DUECALL_ROLES:
                continue
            out = self.out_dir / f"{phase}-{proc.name}.strace"
            argv = [self.strace, "-f", "-qq", "-yy", "-e", f"trace={TRACED}", "-p",
                    str(proc.pid), "-o", str(out)]
            self.running[proc.name] = (subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                                        stderr=subprocess.DEVNULL), out)

    def stop(self, calls: int | None) -> dict[str, Any]:
        return stop_watchers(self.running, lambda path: count(path, self.db_port, calls))


def _is_postgres(peer: str, db_port: str) -> bool:
    match = re.search(r"->\[?[\d.:a-f]+\]?:(\d+)\]$", peer)
    return peer.startswith(("TCP", "TCPv6")) and bool(match and match.group(1) == db_port)


def count(path: Path, db_port: str, calls: int | None) -> dict[str, Any]:
    by_call: Counter[str] = Counter()
    totals = dict.fromkeys(KEYS, 0)
    for line in path.read_text(errors="replace").splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        call, peer = match["call"], match["peer"] or ""
        by_call[call] += 1
        if call in WAITS:
            totals["io_waits"] += 1
        elif call == "futex":
            totals["futex"] += 1
        elif call in SENDS | RECVS and peer:
            if _is_postgres(peer, db_port):
                totals["pg_sends" if call in SENDS else "pg_recvs"] += 1
            elif call in SENDS and (peer.startswith("UNIX") or "eventfd" in peer) and re.search(
                    r", (1|8)[,)]", match["rest"]):
                totals["loop_wakeups"] += 1
            else:
                totals["other_sends" if call in SENDS else "other_recvs"] += 1
    result: dict[str, Any] = {"file": str(path), **totals, "by_syscall": dict(by_call)}
    if calls:
        result["per_call"] = {k: round(v / calls, 2) for k, v in totals.items()}
    return result
