"""The committed event fixtures (stored rows recorded by older code) as StoredEvents."""

import json
from pathlib import Path
from uuid import UUID

from eventsourcing.persistence import StoredEvent

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
V1_CALL = UUID("01943b2a-0000-7000-8000-000000000001")  # 500, timeout, failed, retry, 200
V1_HELD = UUID("01943b2a-0000-7000-8000-000000000002")  # paused, resumed, held, cancelled
V1_LIMITED = UUID("01943b2a-0000-7000-8000-000000000003")  # 429 with Retry-After: 7


def stored_events(name: str = "events_v1.json") -> list[StoredEvent]:
    rows = json.loads((FIXTURES / name).read_text())["events"]
    return [
        StoredEvent(
            originator_id=UUID(row["originator_id"]),
            originator_version=row["originator_version"],
            topic=row["topic"],
            state=row["state"].encode("utf-8"),
        )
        for row in rows
    ]
