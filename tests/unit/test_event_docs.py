"""docs/events.md is generated from the event classes and must be kept up to date."""

import subprocess
import sys

from harness.processes import REPO_ROOT


def test_docs_events_md_is_up_to_date_with_the_event_classes() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/generate_event_docs.py", "--check"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
