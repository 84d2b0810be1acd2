"""scripts/chaos.py, small (issues 8 and 20): 600 calls through real API and worker processes
on a private embedded PostgreSQL, laid out as a fleet (two API processes, three workers, the
read models in a process of their own), with one worker SIGKILLed, one PostgreSQL restart, one
API process SIGKILLed (the client goes on through the other) and one graceful SIGTERM while
they run.

It asserts the invariants, not timings: every accepted call ended (zero lost), no call or
attempt has two outcomes or two executions (zero doubled), no submit retried after an error made
a second call, every attempt is complete and the outbox is empty, every delivery the target saw
carries its attempt's Idempotency-Key (so duplicates carry the first delivery's key), the read
models agree with the event store and with a rebuild from position 0, the SIGTERMed worker
exited within its shutdown timeout, and every 5xx the API gave was problem+json.
"""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.own_server, pytest.mark.slow]


def test_a_short_chaos_run_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DUECALL_") and k != "DATABASE_URL"}
    command = [
        sys.executable, str(REPO_ROOT / "scripts" / "chaos.py"),
        "--calls", "600", "--rate", "50", "--workers", "3",
        "--apis", "2", "--read-model-procs", "1", "--api-kill-at", "0.6",
        "--kill-interval", "4",  # one SIGKILL, at 2 s; the restart and SIGTERM come later
        "--pg-down", "3", "--timeout", "150", "--out", str(out),
        # in-flight attempts of the SIGTERMed worker that outlast 1.5 s are handed back;
        # a SIGKILLed worker's attempts come back after 2 s + 5 s
        "--env", "DUECALL_SHUTDOWN_TIMEOUT_SECONDS=2",
        "--env", "DUECALL_EXECUTION_GRACE_SECONDS=5",
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=240, check=False)
    output = done.stdout[-4000:] + done.stderr[-4000:]
    assert out.exists(), output
    result = json.loads(out.read_text())

    assert result["error"] is None, output
    assert Counter(f["kind"] for f in result["faults"]) == {
        "sigkill": 1, "pg_restart": 1, "sigterm": 1, "api_kill": 1}
    broken = {name: item for name, item in result["invariants"].items() if not item["ok"]}
    assert not broken, json.dumps({"broken": broken, "store": result["event_store"],
                                   "deliveries": result["deliveries"],
                                   "read_models": result["read_models"]}, indent=1)
    assert result["submit"]["accepted"] == 600
    assert result["event_store"]["figures"]["calls"] == 600
    assert result["outcomes"]["unexpected"] == 0  # each call ended as its kind says
    assert done.returncode == 0, output
