"""Polling helpers for tests that wait on real asynchronous work."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from uuid import UUID

    from domain.service_call import ServiceCall
    from infrastructure.container import Container

T = TypeVar("T")


def wait_until(probe: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Call ``probe`` until it returns something truthy; return it, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


def wait_terminal(
    container: Container, tenant: str, call_id: UUID, timeout: float = 10.0
) -> ServiceCall:
    """The call once it is terminal (succeeded, failed or cancelled), read through ``container``;
    TimeoutError if it is not within ``timeout`` seconds."""

    def finished() -> ServiceCall | None:
        state = container.service_calls.get_call(tenant, call_id)
        return state if state.is_terminal else None

    return wait_until(finished, timeout=timeout)
