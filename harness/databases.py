"""Databases for tests and runs: a database of its own on a PostgreSQL server (created, then
dropped), and an embedded PostgreSQL (the `pgserver` package) that a test or run starts,
stops and starts again."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from harness.processes import HarnessError, console
from infrastructure.embedded_postgres import (
    embedded_database_url,
    start_embedded,
    stop_embedded,
)

SETTINGS_SHOWN = ("server_version", "max_connections", "fsync", "synchronous_commit",
                  "shared_buffers", "wal_level")

# -- a database of its own ------------------------------------------------------------------------


def create_database(server_url: str, prefix: str) -> tuple[str, str]:
    """A new empty database on the server of ``server_url``, named ``<prefix>_<time>_<id>``:
    (its name, its URL)."""
    name = f"{prefix}_{datetime.now():%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server_url)
    params["dbname"] = name
    return name, make_conninfo(**params)  # type: ignore[arg-type]


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_database(server_url: str, prefix: str = "duecall_test") -> Iterator[str]:
    """Create an empty database on the server of ``server_url``; yield its URL; drop it."""
    name, url = create_database(server_url, prefix)
    try:
        yield url
    finally:
        drop_database(server_url, name)


def reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def wait_reachable(url: str, timeout: float) -> float:
    """Seconds until the database answers (HarnessError after ``timeout``)."""
    began = time.monotonic()
    while not reachable(url):
        if time.monotonic() - began > timeout:
            raise HarnessError(f"the database did not come back within {timeout:g} s")
        time.sleep(0.05)
    return time.monotonic() - began


def server_settings(conn: psycopg.Connection[Any],
                    names: Sequence[str] = SETTINGS_SHOWN) -> dict[str, str]:
    """The server's settings of these ``names`` (SHOW), for the record."""
    found: dict[str, str] = {}
    for name in names:
        with contextlib.suppress(psycopg.Error):
            row = conn.execute(f"SHOW {name}").fetchone()
            found[name] = str(row[0]) if row else ""
    return found


# -- an embedded server ---------------------------------------------------------------------------


class EmbeddedServer:
    """An embedded PostgreSQL in ``data_dir``: started (or found running), stopped, started
    again; one made by ``temporary()`` lives in a directory of its own, which ``remove()``
    deletes."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.url = ""
        self.started_here = False  # start() found no server running in data_dir
        self._temporary_root: Path | None = None

    @classmethod
    def temporary(cls, prefix: str) -> EmbeddedServer:
        """A server in a new directory under /tmp (short: its socket path must be)."""
        root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        server = cls(root / "pg")
        server._temporary_root = root
        return server

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def start(self) -> str:
        """Start the server, or find it running; its URL."""
        self.started_here = self.pid is None
        self.url = embedded_database_url(self.data_dir)
        return self.url

    def start_again(self) -> None:
        """Start it after ``stop()`` (same URL)."""
        start_embedded(self.data_dir)

    def stop(self, timeout: float = 30.0) -> None:
        """A fast shutdown (pg_ctl; SIGINT to the postmaster if that fails), waited for."""
        pid = self.pid
        if pid is None:
            return
        try:
            stop_embedded(self.data_dir)
        except Exception as error:
            console.print(f"[yellow]stopping PostgreSQL: {error}; sending SIGINT[/]")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    def remove(self) -> None:
        """Stop it and delete its directory (a temporary one only)."""
        self.stop()
        if self._temporary_root is not None:
            shutil.rmtree(self._temporary_root, ignore_errors=True)
