"""Schemathesis against a real `duecall serve`: the admin API, with the admin key (every check,
every phase, stateful links included; tests/support/schemathesis_run.py)."""

from pathlib import Path

import pytest

from harness.duecall_process import DuecallProcess
from harness.processes import ADMIN_KEY
from tests.support.schemathesis_run import run_schemathesis

pytestmark = [pytest.mark.e2e, pytest.mark.schemathesis, pytest.mark.slow]


def test_the_admin_api_passes_every_schemathesis_check(
    duecall_server: DuecallProcess, tmp_path: Path
) -> None:
    run_schemathesis(duecall_server, ADMIN_KEY, tmp_path, "--include-path-regex", "^/v1/admin")
