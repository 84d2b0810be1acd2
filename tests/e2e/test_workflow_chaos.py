"""scripts/bench_workflows.py's chaos phase, small (issue 19): 40 runs of a diamond plus a
tail (a -> b, c -> d -> e; c answered 503 once, so retried) through real API and worker
processes on a private embedded PostgreSQL, one of the three workers SIGKILLed (and replaced)
while they run.

It asserts the phase's invariants, not timings: every run succeeded, by its API answer and by
its events; every step ran on exactly one call (its key ``wf:<run>:<step>`` maps to one call
id, one ``StepStarted``), which succeeded once and reached the target; every request the
target saw carries its call's ``<call id>:<attempt>`` Idempotency-Key of a recorded attempt;
the API answer agrees with the events; nothing lost or doubled among the calls, the outbox
empty, the read models agree with the store and with a rebuild from position 0.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STEPS = 5

pytestmark = [pytest.mark.e2e, pytest.mark.own_server, pytest.mark.slow]


def test_forty_runs_with_a_worker_killed_lose_and_double_no_step(tmp_path: Path) -> None:
    out = tmp_path / "workflows.json"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DUECALL_") and k != "DATABASE_URL"}
    command = [
        sys.executable, str(REPO_ROOT / "scripts" / "bench_workflows.py"),
        "--phases", "chaos", "--runs", "40", "--chaos-rate", "5", "--workers", "3",
        "--kill-interval", "7",  # one SIGKILL, 2 s in; the 40 runs are submitted over 8 s
        "--timeout", "90", "--no-progress", "--json", str(out),
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=180, check=False)
    output = done.stdout[-4000:] + done.stderr[-4000:]
    assert out.exists(), output
    result = json.loads(out.read_text())
    chaos = result["phases"].get("chaos", {})

    assert result["error"] is None, output
    assert len(chaos["kills"]) == 1
    broken = {name: item for name, item in chaos["invariants"].items() if not item["ok"]}
    assert not broken, json.dumps({"broken": broken, "workflows": chaos["workflows"],
                                   "store": chaos["event_store"],
                                   "deliveries": chaos["deliveries"],
                                   "read_models": chaos["read_models"]}, indent=1)
    assert chaos["workflows"]["runs"] == 40
    assert chaos["event_store"]["figures"]["calls"] == 40 * STEPS
    # every run's step c failed its first attempt: its second was made, with its own key
    assert chaos["deliveries"]["deliveries_of_later_attempts"] >= 40
    assert chaos["deliveries"]["distinct_keys"] >= 40 * (STEPS + 1)
    assert done.returncode == 0, output
