"""Signed requests as a target sees them, and the development key `scripts/serve` prints."""

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from harness.api_keys import bearer
from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer

pytestmark = pytest.mark.e2e


def _verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """An independent check, as the README shows a target (headers lower-cased)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['duecall-id']}.{headers['duecall-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, s) for s in headers["duecall-signature"].split())


def test_the_target_can_verify_every_request_with_the_tenants_secret(
    api: httpx.Client, target: TargetServer, as_tenant: Callable[[str], dict[str, str]]
) -> None:
    secrets = api.get("/v1/signing-secret").json()["secrets"]
    body = '{"order": 42, "note": "signed \\u00e9"}'
    request = {"method": "POST", "url": f"{target.url}/signed", "body": body,
               "headers": {"Content-Type": "application/json"}}
    call = api.post("/v1/service-calls", json={"request": request}).json()

    received = target.wait_for(1, path="/signed")[0]

    assert received.headers["duecall-id"] == call["id"]
    assert abs(int(received.headers["duecall-timestamp"]) - time.time()) < 60
    assert any(_verify(s, received.headers, received.body) for s in secrets)
    assert not _verify(secrets[0], received.headers, received.body + b" ")
    other = api.get("/v1/signing-secret", headers=as_tenant("signing-other")).json()["secrets"]
    assert not any(_verify(s, received.headers, received.body) for s in other)


def test_serve_with_dev_key_prints_a_working_key_and_the_same_one_again(
    isolated_database_url: str, tmp_path: Path
) -> None:
    env = {"DUECALL_DATA_DIR": str(tmp_path / "pgdata")}
    keys = []
    for _ in range(2):
        with DuecallProcess(isolated_database_url, args=["--dev-key"], extra_env=env) as server:
            found = re.search(r"dc_dev_[0-9a-f]+_\S+", server.log_text())
            assert found, server.log_tail()
            keys.append(found.group(0))
            assert f"dashboard: {server.url}/ui#key={keys[-1]}" in server.log_text()
            listed = httpx.get(f"{server.url}/v1/service-calls", headers=bearer(keys[-1]))
            assert listed.status_code == 200, listed.text
    assert keys[0] == keys[1]
    assert (tmp_path / "dev-key").stat().st_mode & 0o777 == 0o600
