"""Schemathesis against a real `duecall serve`: the workflow run API (every check, every
phase, stateful links included; tests/support/schemathesis_run.py). A definition the domain
refuses is a 422 naming the field; a command a run's status does not allow, a 409
(tests/e2e/schemathesis.toml)."""

from pathlib import Path

import pytest

from harness.api_keys import issue_tenant_key
from harness.duecall_process import DuecallProcess
from tests.support.schemathesis_run import run_schemathesis

pytestmark = [pytest.mark.e2e, pytest.mark.schemathesis, pytest.mark.slow]


def test_the_workflow_run_api_passes_every_schemathesis_check(
    duecall_server: DuecallProcess, tmp_path: Path
) -> None:
    key = issue_tenant_key(duecall_server.url, "schemathesis-wf")
    run_schemathesis(duecall_server, key, tmp_path, "--include-path-regex", "^/v1/workflows/")
