"""Schemathesis against a real `duecall serve`: every check, every phase (stateful links
included), a few examples per operation. Select it with ``-m schemathesis``.

Two runs: the tenant API with a tenant's key, then the admin API with the admin key (one
``Authorization`` header per run). Left out: ``GET /v1/events/stream``, an endless
Server-Sent Events response (it never completes, so no check can judge it; its parameters
have tests of their own in test_event_stream.py).
"""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.duecall_process import ADMIN_KEY, DuecallProcess, issue_tenant_key

pytestmark = [pytest.mark.e2e, pytest.mark.schemathesis, pytest.mark.slow]

MAX_EXAMPLES = 20  # per operation and phase: both runs take about a minute here
RUN_TIMEOUT = 240  # seconds: a hung run fails the test instead of the suite
SEED = 15  # the same cases every run (the server's state still differs)
CONFIG = Path(__file__).with_name("schemathesis.toml")  # where a 422 answers schema-valid data


def schemathesis(server: DuecallProcess, key: str, tmp: Path, *filters: str) -> None:
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG),
        "run", f"{server.url}/openapi.json",
        "--checks", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--request-timeout", "10",
        "--generation-database", "none",
        "--report-dir", str(tmp),
        "--no-color",
        "-H", f"Authorization: Bearer {key}",
        *filters,
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                         check=False, cwd=tmp)
    assert run.returncode == 0, f"schemathesis found problems:\n{run.stdout[-20_000:]}" \
        f"\n{run.stderr[-5_000:]}\n--- server log ---\n{server.log_tail(40)}"


def test_the_tenant_api_passes_every_schemathesis_check(
    duecall_server: DuecallProcess, tmp_path: Path
) -> None:
    key = issue_tenant_key(duecall_server.url, "schemathesis")
    schemathesis(duecall_server, key, tmp_path,
                 "--exclude-path", "/v1/events/stream",
                 "--exclude-path-regex", "^/v1/admin")


def test_the_admin_api_passes_every_schemathesis_check(
    duecall_server: DuecallProcess, tmp_path: Path
) -> None:
    schemathesis(duecall_server, ADMIN_KEY, tmp_path, "--include-path-regex", "^/v1/admin")
