"""Identifiers: UUIDv7 service call ids and derived execution ids."""

from __future__ import annotations

import itertools
import time
import uuid
from uuid import UUID

from domain.ids import execution_id_for, new_service_call_id


def _millis(value: UUID) -> int:
    return value.int >> 80


def test_new_service_call_id_is_version_7() -> None:
    assert new_service_call_id().version == 7


def test_new_service_call_id_has_the_rfc_4122_variant() -> None:
    assert new_service_call_id().variant == uuid.RFC_4122


def test_new_service_call_id_carries_the_current_unix_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    value = new_service_call_id()
    after = time.time_ns() // 1_000_000
    assert before <= _millis(value) <= after


def test_ids_generated_in_successive_milliseconds_sort_ascending() -> None:
    ids: list[UUID] = []
    for _ in range(20):
        ids.append(new_service_call_id())
        time.sleep(0.002)
    assert ids == sorted(ids)
    assert [str(i) for i in ids] == sorted(str(i) for i in ids)
    assert all(_millis(a) < _millis(b) for a, b in itertools.pairwise(ids))


def test_ten_thousand_ids_are_unique() -> None:
    ids = {new_service_call_id() for _ in range(10_000)}
    assert len(ids) == 10_000


def test_execution_id_is_deterministic_per_call_and_attempt() -> None:
    call_id = new_service_call_id()
    assert execution_id_for(call_id, 1) == execution_id_for(call_id, 1)
    assert execution_id_for(UUID(str(call_id)), 3) == execution_id_for(call_id, 3)


def test_execution_id_differs_across_attempts() -> None:
    call_id = new_service_call_id()
    ids = {execution_id_for(call_id, attempt) for attempt in range(1, 101)}
    assert len(ids) == 100


def test_execution_id_differs_across_calls() -> None:
    ids = {execution_id_for(new_service_call_id(), 1) for _ in range(100)}
    assert len(ids) == 100


def test_execution_id_is_not_the_call_id() -> None:
    call_id = new_service_call_id()
    assert execution_id_for(call_id, 1) != call_id
