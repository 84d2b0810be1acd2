"""Runs schemathesis (its CLI, in a subprocess) against a real `duecall serve`: every check,
every phase (stateful links included), a few examples per operation and phase, a fixed seed.
The test modules tests/e2e/test_schemathesis_*.py each run one part of the API, so that the
test processes run the parts side by side."""

import subprocess
import sys
from pathlib import Path

from harness.duecall_process import DuecallProcess
from harness.processes import REPO_ROOT

MAX_EXAMPLES = 20  # per operation and phase
RUN_TIMEOUT = 240  # seconds: a hung run fails the test instead of the suite
SEED = 15  # the same cases every run (the server's state still differs)
# where a 422 answers schema-valid data (rules a schema cannot state), and why
CONFIG = REPO_ROOT / "tests" / "e2e" / "schemathesis.toml"


def run_schemathesis(server: DuecallProcess, key: str, tmp: Path, *filters: str) -> None:
    """Run it with ``key`` on the operations ``filters`` select; fail naming what it found."""
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
