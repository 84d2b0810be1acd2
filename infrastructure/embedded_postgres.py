"""An embedded PostgreSQL (the `pgserver` package) shared by every duecall process.

The first process to ask starts the server in the data directory; later processes (API,
workers) find it running and connect to the same one. The server keeps running after the
process that started it exits, so restarts are fast and data survives.
"""

import fcntl
import os
import warnings
from pathlib import Path

import structlog

with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
    warnings.simplefilter("ignore")
    from pgserver import get_server  # type: ignore[attr-defined]
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

log = structlog.get_logger(__name__)

SOCKET_PATH_LIMIT = 100  # Unix socket paths are limited to ~107 bytes.


def embedded_database_url(data_dir: Path) -> str:
    """Start (or find) the embedded server in ``data_dir`` and return its URL."""
    data_dir = data_dir.expanduser().resolve()
    if len(str(data_dir / ".s.PGSQL.5432")) > SOCKET_PATH_LIMIT:
        raise ValueError(f"data directory path too long for a Unix socket: {data_dir}")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir.parent / f".{data_dir.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process at a time may start the server
        server = get_server(data_dir, cleanup_mode=None)
        fcntl.flock(lock, fcntl.LOCK_UN)
    url: str = server.get_uri()
    log.info("embedded_postgres", data_dir=str(data_dir), pid=os.getpid())
    return url


def start_embedded(data_dir: Path) -> str:
    """Start the embedded server in ``data_dir`` again after ``stop_embedded`` (fault
    injection, restarts); its URL, which is the same as before (a socket in ``data_dir``).

    ``embedded_database_url`` keeps a handle per data directory for the life of the process, so
    asking it again does not notice a stopped server; this does.
    """
    data_dir = data_dir.expanduser().resolve()
    lock_path = data_dir.parent / f".{data_dir.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        server = get_server(data_dir, cleanup_mode=None)
        server.ensure_postgres_running()
        fcntl.flock(lock, fcntl.LOCK_UN)
    url: str = server.get_uri()
    return url


def stop_embedded(data_dir: Path) -> None:
    """Stop the embedded server in ``data_dir`` (tests, benchmarks, fault injection).

    pgserver's own clean-up stops a server only when the last process holding a handle lets
    go, and only for handles made to stop; ours are made to keep running. So ask pg_ctl.
    """
    server = get_server(data_dir.expanduser().resolve(), cleanup_mode=None)
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
