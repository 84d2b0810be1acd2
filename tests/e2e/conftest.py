"""End-to-end fixtures: one real `duecall serve` process per test process (on a database of its
own) and one real HTTP target per module; a module that needs other settings starts its own."""

from collections.abc import Callable, Iterator

import httpx
import pytest

from harness.api_keys import tenant_headers
from harness.databases import fresh_database
from harness.duecall_process import DuecallProcess
from harness.target_server import TargetServer


@pytest.fixture(scope="session")
def duecall_server(server_url: str) -> Iterator[DuecallProcess]:
    """`duecall serve` (API + workers), shared by the modules of this test process, on a
    database of its own: the other tests' clean-ups (which empty the session database's
    tables) never reach it. Tests that look into its database use ``.database_url``."""
    with fresh_database(server_url, prefix="duecall_e2e") as url, DuecallProcess(url) as server:
        yield server


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with TargetServer() as server:
        yield server


@pytest.fixture(scope="module")
def api(duecall_server: DuecallProcess) -> Iterator[httpx.Client]:
    """A client of the server with an API key of the tenant ``default``."""
    headers = tenant_headers(duecall_server.url, "default")
    with httpx.Client(base_url=duecall_server.url, headers=headers, timeout=10.0) as client:
        yield client


@pytest.fixture(scope="module")
def as_tenant(duecall_server: DuecallProcess) -> Callable[[str], dict[str, str]]:
    """``as_tenant("b")``: headers that make a request as tenant ``b`` (e.g. with ``api``)."""
    return lambda tenant: tenant_headers(duecall_server.url, tenant)


@pytest.fixture
def isolated_database_url(server_url: str) -> Iterator[str]:
    """A database of its own, for a test whose leftovers would disturb the session database."""
    with fresh_database(server_url, prefix="duecall_e2e") as url:
        yield url
