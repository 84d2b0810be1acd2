"""Ports the application declares; infrastructure implements them."""

from collections.abc import Mapping
from typing import Protocol

from domain.outcome import AttemptResult
from domain.request import RequestSpec


class HttpSender(Protocol):
    async def send(self, request: RequestSpec, extra_headers: Mapping[str, str]) -> AttemptResult:
        """Make the request; never raises for HTTP or network failures (they are results)."""

    async def aclose(self) -> None:
        """Release connections."""
