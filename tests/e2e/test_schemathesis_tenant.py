"""Schemathesis against a real `duecall serve`: the rest of the tenant API (every check, every
phase, stateful links included; tests/support/schemathesis_run.py). Left out:
``GET /v1/events/stream``, an endless Server-Sent Events response (no check can judge it; its
parameters have tests of their own in test_event_stream.py), and the workflow runs (a run of
their own, test_schemathesis_workflows.py)."""

from pathlib import Path

import pytest

from harness.api_keys import issue_tenant_key
from harness.duecall_process import DuecallProcess
from tests.support.schemathesis_run import run_schemathesis

pytestmark = [pytest.mark.e2e, pytest.mark.schemathesis, pytest.mark.slow]


def test_the_rest_of_the_tenant_api_passes_every_schemathesis_check(
    duecall_server: DuecallProcess, tmp_path: Path
) -> None:
    key = issue_tenant_key(duecall_server.url, "schemathesis")
    run_schemathesis(duecall_server, key, tmp_path,
                     "--exclude-path", "/v1/events/stream",
                     "--exclude-path-regex", "^/v1/(admin|service-calls|workflows)")
