"""Identifiers: UUIDv7 for calls (time-ordered), derived UUIDs for executions."""

import os
import time
from uuid import UUID, uuid5

_EXECUTION_NAMESPACE = UUID("6f1d3c2e-4b5a-4e8f-9c0d-1a2b3c4d5e6f")


def new_service_call_id() -> UUID:
    """A UUIDv7 (RFC 9562): 48-bit millisecond timestamp, version, variant, random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return UUID(int=value)


def execution_id_for(service_call_id: UUID, attempt: int) -> UUID:
    """One execution per (call, attempt): a duplicate start finds the same id."""
    return uuid5(_EXECUTION_NAMESPACE, f"{service_call_id}:{attempt}")
