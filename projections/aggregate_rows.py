"""Folding a batch into a read model of one row per aggregate (schedules, workflow runs).

The aggregate's first event makes its row; each later event sets some of its columns, worked
out from the row as folded so far. Most events say that one thing happened, not what the
totals now are, so an event reads its row's state: the columns it needs (``state``) of the
rows that earlier batches wrote are read in ONE query per batch, the events are applied in
log order in memory, and absolute values are written (``RowChanges``): a rebuild gives the
same rows whatever the batch boundaries. What is read is what to add to: one fold of a read
model runs at a time (its advisory lock; ``follower.py``, ``runner.py``), in the transaction
that writes the rows, and an isolated part of a failed batch (``isolating.py``) is folded in a
savepoint that reads what the parts before it wrote.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog
from psycopg import Cursor
from psycopg.rows import DictRow

from projections.folding import RowChanges
from projections.runner import LogEvent

log = structlog.get_logger(__name__)

Row = dict[str, Any]


@dataclass(frozen=True)
class AggregateRows:
    """``created`` makes a row from the aggregate's first event (topic ``prefix + "Created"``);
    ``changes[kind]`` the columns an event ``prefix + kind`` sets, given the row's state (at
    least the ``state`` columns) and the event. Every row also gets the event's time
    (``updated_at``) and the aggregate's version."""

    table: str
    prefix: str
    state: tuple[str, ...]
    created: Callable[[Any], Row]
    changes: Mapping[str, Callable[[Row, Any], Row]]

    @property
    def topics(self) -> frozenset[str]:
        return frozenset({self.prefix + "Created", *(self.prefix + k for k in self.changes)})

    def fold(
        self, curs: Cursor[DictRow], events: Sequence[LogEvent]
    ) -> tuple[RowChanges, dict[UUID, Row]]:
        """The batch's row changes (for the caller to add to and flush) and the state of each
        row the events touched, as folded."""
        rows = RowChanges(self.table)
        current = self._current(curs, events)
        for recorded in events:
            e, kind = recorded.event, recorded.topic.removeprefix(self.prefix)
            stamp = {"updated_at": e.timestamp, "version": e.originator_version}
            if kind == "Created":
                row = {**self.created(e), **stamp}
                rows.insert(e.originator_id, row)
                current[e.originator_id] = dict(row)
                continue
            state = current.get(e.originator_id)
            if state is None:  # its Created was not folded (recorded as a failure)
                log.warning("read_model_event_without_row", table=self.table,
                            originator_id=str(e.originator_id), topic=recorded.topic,
                            position=recorded.position)
                continue
            changes = {**self.changes[kind](state, e), **stamp}
            state.update(changes)
            rows.update(e.originator_id, changes)
        return rows, current

    def _current(self, curs: Cursor[DictRow], events: Sequence[LogEvent]) -> dict[UUID, Row]:
        """The state of the rows the events change that earlier batches wrote."""
        created = {r.event.originator_id for r in events if r.topic == self.prefix + "Created"}
        earlier = list({r.event.originator_id for r in events} - created)
        if not earlier:
            return {}
        curs.execute(f"SELECT id, {', '.join(self.state)} FROM {self.table} WHERE id = ANY(%s)",
                     (earlier,))
        return {row["id"]: dict(row) for row in curs.fetchall()}
