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


class SecretBox(Protocol):
    """Seals secrets for storage at rest and opens them again."""

    def seal(self, plaintext: str) -> str:
        """The sealed form of ``plaintext`` (a string safe to record)."""

    def open(self, sealed: str) -> str:
        """The plaintext of a value ``seal`` made; raises if it was tampered with."""
