"""The events table is analyzed quickly and rarely: eventsourcing's writers lock it in EXCLUSIVE
mode, which waits for any ANALYZE of it (see ``infrastructure/event_hashes.py``)."""

import pytest

from infrastructure.container import Container
from tests.support.db_queries import rows

pytestmark = pytest.mark.smoke


def test_the_events_table_leaves_state_out_of_its_statistics(container: Container) -> None:
    targets = dict(rows(
        container.database_url,
        "SELECT attname::text, attstattarget FROM pg_attribute "
        "WHERE attrelid = 'duecall_events'::regclass AND attnum > 0 AND NOT attisdropped",
    ))
    assert targets["state"] == 0
    assert {targets[c] for c in ("topic", "originator_id", "notification_id")} == {10}
    (options,), = rows(
        container.database_url,
        "SELECT reloptions FROM pg_class WHERE oid = 'duecall_events'::regclass",
    )
    assert "autovacuum_analyze_scale_factor=0.1" in options
