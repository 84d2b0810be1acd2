"""Contracts with library internals that duecall overrides or calls for speed.

Each test pins what the override assumes about a private part of eventsourcing or psycopg, so
an upgrade that changes it fails here, by name, instead of silently changing what is recorded
or bringing back a hang. When one fails: read the library's new code, then the module named in
the test, and adapt both together.
"""

import inspect
import re

from eventsourcing.application import Application
from eventsourcing.persistence import EventStore
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from psycopg_pool import ConnectionPool


def _body(source: str) -> list[str]:
    """A function's statements, one per line, without its signature and docstring."""
    lines = [line.strip() for line in source.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.endswith(":") and ")" in line)
    body = [line for line in lines[start + 1 :] if line and not line.startswith("#")]
    if body and body[0].startswith('"""'):
        closing = 0 if body[0].count('"""') == 2 else next(
            i for i, line in enumerate(body) if i > 0 and line.endswith('"""')
        )
        body = body[closing + 1 :]
    return body


def _method_source(cls: type, name: str) -> str:
    """The method as written in the class's source (even when the attribute was replaced)."""
    source = inspect.getsource(cls)
    start = source.index(f"    def {name}(")
    following = re.search(r"\n    (def |@)", source[start + 1 :])
    return source[start : start + 1 + following.start()] if following else source[start:]


def test_save_is_record_snapshots_notify_as_application_outbox_repeats_it() -> None:
    """application/outbox.py ``_save`` is ``Application.save`` step for step, without its
    ``collect_events`` checks."""
    assert _body(_method_source(Application, "save")) == [
        "processing_event: ProcessingEvent[TAggregateID] = ProcessingEvent()",
        "processing_event.collect_events(*objs, **kwargs)",
        "recordings = self._record(processing_event)",
        "self._take_snapshots(processing_event)",
        "self._notify(recordings)",
        "self.notify(processing_event.events)  # Deprecated.",
        "return recordings",
    ]


def test_the_insert_locks_the_table_and_notifies_before_inserting() -> None:
    """The record function (infrastructure/schema.py ``duecall_record``) repeats these steps of
    eventsourcing's insert in SQL: set the lock timeout, lock the events table EXCLUSIVE, NOTIFY
    the table's channel, insert; and ``Application.save`` hands its keywords (``effects``) to
    ``insert_events``."""
    assert _body(_method_source(PostgresApplicationRecorder, "_insert_stored_events")) == [
        "self._lock_table(curs)",
        "self._notify_channel(curs)",
        "super()._insert_stored_events(curs, stored_events, **kwargs)",
    ]
    lock = _body(_method_source(PostgresApplicationRecorder, "__init__"))
    assert "self.channel_name = self.events_table_name.replace(\".\", \"_\")" in lock
    assert 'SQL("SET LOCAL lock_timeout = \'{0}s\'").format(self.datastore.lock_timeout),' in lock
    assert 'SQL("LOCK TABLE {0}.{1} IN EXCLUSIVE MODE").format(' in lock
    assert "**processing_event.saved_kwargs," in _body(_method_source(Application, "_record"))
    put = _body(_method_source(EventStore, "put"))
    assert "notification_ids = self.recorder.insert_events(stored_events, **kwargs)" in put


def test_the_recorder_methods_duecall_retries_itself_carry_the_undecorated_one() -> None:
    """infrastructure/outbox.py calls ``__wrapped__`` to replace eventsourcing's retry
    decorator (many retries with long waits) by a few short ones."""
    for method in (
        PostgresApplicationRecorder.insert_events,
        PostgresAggregateRecorder.select_events,
        PostgresApplicationRecorder.select_notifications,
        PostgresApplicationRecorder.max_notification_id,
    ):
        assert callable(getattr(method, "__wrapped__", None)), method.__qualname__


def test_the_pool_check_replaced_for_idle_only_pings_is_the_one_getconn_calls() -> None:
    """infrastructure/pool_checks.py sets ``pool._check`` on eventsourcing's pools: psycopg_pool
    must keep the check in that attribute and call it on every connection it hands out."""
    pool = ConnectionPool("", open=False, check=ConnectionPool.check_connection)
    assert pool._check is ConnectionPool.check_connection
    assert "self._check(conn)" in _body(inspect.getsource(ConnectionPool._check_connection))
    handing_out = inspect.getsource(ConnectionPool._getconn_with_check_loop)
    assert "self._check_connection(conn)" in _body(handing_out)
