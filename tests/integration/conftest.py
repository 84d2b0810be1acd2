"""Integration fixtures shared by the read-model tests."""

from collections.abc import Iterator

import pytest

from infrastructure.container import Container
from tests.support.clean_state import emptied
from tests.support.read_models import reset_read_models
from tests.support.workload import workload_settings


@pytest.fixture
def rm_container(database_url: str, clean_database: str) -> Iterator[Container]:
    """A container for driving workloads (see workload_settings), its read models empty."""
    container = Container.build(workload_settings(database_url))
    reset_read_models(container)
    try:
        yield container
    finally:
        container.close()


@pytest.fixture(scope="module")
def module_rm_container(database_url: str) -> Iterator[Container]:
    """Like ``rm_container``, for a module whose tests only read what one fixture set up: the
    session database emptied and the read models empty at the module's start, and the read
    models emptied again at its end."""
    with emptied(database_url):
        container = Container.build(workload_settings(database_url))
        try:
            reset_read_models(container)
            yield container
            reset_read_models(container)
        finally:
            container.close()


@pytest.fixture
def hub_container(database_url: str, clean_database: str) -> Iterator[Container]:
    """A container for driving workloads, its read models as they are (the event stream)."""
    container = Container.build(workload_settings(database_url))
    try:
        yield container
    finally:
        container.close()
