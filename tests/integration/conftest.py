"""Integration fixtures shared by the read-model tests."""

from collections.abc import Iterator

import pytest

from infrastructure.container import Container
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


@pytest.fixture
def hub_container(database_url: str, clean_database: str) -> Iterator[Container]:
    """A container for driving workloads, its read models as they are (the event stream)."""
    container = Container.build(workload_settings(database_url))
    try:
        yield container
    finally:
        container.close()
