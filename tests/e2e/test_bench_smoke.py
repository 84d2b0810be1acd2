"""scripts/bench.py end to end, tiny: it starts the stack, runs every phase, writes every figure;
and, as tiny, bench_schedules.py's scale phase and bench_workflows.py's overhead phase.

The figures of so small a run mean nothing; this only proves the benchmark works.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_bench_tiny_run_writes_every_figure(server_url: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUECALL_")}
    env["DATABASE_URL"] = server_url  # the bench creates (and drops) its own database there
    command = [
        sys.executable, str(REPO_ROOT / "scripts" / "bench.py"),
        "--calls", "200", "--submits", "100", "--batch-calls", "200", "--warmup", "20",
        "--precision-calls", "20", "--precision-lead", "1", "--precision-spread", "0.5",
        "--timeout", "60", "--start-timeout", "30", "--no-progress", "--out", str(out),
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["error"] is None
    figures = result["figures"]
    missing = [k for k, v in figures.items() if isinstance(v, bool) or
               not isinstance(v, int | float)]
    assert not missing, f"figures without a number: {missing}"
    assert result["phases"]["throughput"]["statuses"] == {"succeeded": 200}
    assert result["phases"]["precision"]["early"] == 0
    assert set(result["phases"]) == {"throughput", "submit", "batch", "precision"}


def run_phases_script(tmp_path: Path, script: str, args: list[str],
                      timeout: float) -> dict[str, Any]:
    """Run a phases script (bench_schedules.py, bench_workflows.py) to its end; its JSON,
    which must report no error."""
    out = tmp_path / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUECALL_")}
    command = [sys.executable, str(REPO_ROOT / "scripts" / script), *args,
               "--start-timeout", "30", "--no-progress", "--json", str(out)]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    assert result["error"] is None
    return result


def test_bench_schedules_tiny_run(server_url: str, tmp_path: Path) -> None:
    """scripts/bench_schedules.py's scale phase, tiny (20 schedules every 5 s, a 12 s window,
    no SIGKILL: a killed worker's attempts wait for their leases, longer than this run)."""
    result = run_phases_script(tmp_path, "bench_schedules.py", [
        "--phases", "scale", "--schedules", "20", "--interval", "5", "--window", "12",
        "--warmup", "2", "--drain", "3", "--kill-at", "-1", "--database-url", server_url,
        "--logs", str(tmp_path / "logs"),
    ], timeout=90)
    scale = result["phases"]["scale"]
    assert scale["create"]["created"] == 20
    assert scale["fires_in_window"] >= 40
    assert scale["duplicates"] == 0
    assert scale["missing"] == 0, scale["missing_examples"]
    assert scale["unattributed_arrivals"] == 0
    assert scale["lateness_ms"]["count"] == scale["fires_in_window"]


def test_bench_workflows_overhead_tiny_run(server_url: str, tmp_path: Path) -> None:
    """scripts/bench_workflows.py's overhead phase, tiny (6 runs: 3 chains of 5 steps, 3
    diamonds): every step that needs another is measured, each part of the split too."""
    result = run_phases_script(tmp_path, "bench_workflows.py", [
        "--phases", "overhead", "--overhead-runs", "6", "--rate", "6", "--timeout", "60",
        "--database-url", server_url,
    ], timeout=120)
    overhead = result["phases"]["overhead"]
    assert overhead["not_measured"] == {}
    assert overhead["steps_made"] == 3 * 5 + 3 * 4
    for part in ("total", "workflow_loop", "dispatch"):
        assert overhead["overhead_ms"][part]["all"]["count"] == 3 * 4 + 3 * 3
        assert overhead["overhead_ms"][part]["all"]["p50"] is not None
    assert overhead["overhead_ms"]["total"]["all"]["p50"] > 0  # after the outcome, never before
    per_step = overhead["cpu_ms_per_step"]  # PostgreSQL's only when its processes are visible
    assert {"api-0", "worker-0", "worker-1"} <= per_step.keys()
    assert all(per_step[name] > 0 for name in ("api-0", "worker-0", "worker-1"))
