"""Contracts with library internals that duecall overrides or calls for speed.

Each test pins what the override assumes about a private part of eventsourcing or psycopg, so
an upgrade that changes it fails here, by name, instead of silently changing what is recorded
or bringing back a hang. When one fails: read the library's new code, then the module named in
the test, and adapt both together.
"""

import inspect
import re

from eventsourcing.application import Application
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from psycopg._pipeline_base import BasePipeline
from psycopg_pool import ConnectionPool

from infrastructure import pipeline_flush


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


def test_save_is_record_snapshots_notify_as_application_recording_repeats_it() -> None:
    """application/recording.py ``_save`` is ``Application.save`` step for step, without its
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
    """infrastructure/recorder.py ``_insert_stored_events`` repeats these two steps and then
    inserts the same rows its own way; ``_insert_events`` (the outbox hook) receives the save's
    keywords."""
    assert _body(_method_source(PostgresApplicationRecorder, "_insert_stored_events")) == [
        "self._lock_table(curs)",
        "self._notify_channel(curs)",
        "super()._insert_stored_events(curs, stored_events, **kwargs)",
    ]
    hook = inspect.signature(PostgresApplicationRecorder._insert_events).parameters
    assert list(hook)[:3] == ["self", "curs", "stored_events"]
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in hook.values())


def test_the_recorder_methods_duecall_retries_itself_carry_the_undecorated_one() -> None:
    """infrastructure/recorder.py calls ``__wrapped__`` to replace eventsourcing's retry
    decorator (many retries with long waits) by a few short ones."""
    for method in (
        PostgresApplicationRecorder.insert_events,
        PostgresAggregateRecorder.select_events,
        PostgresApplicationRecorder.select_notifications,
        PostgresApplicationRecorder.max_notification_id,
    ):
        assert callable(getattr(method, "__wrapped__", None)), method.__qualname__


def test_the_pipeline_sync_patched_for_the_flush_hang_is_the_one_it_replaces() -> None:
    """infrastructure/pipeline_flush.py replaces psycopg's ``BasePipeline._sync_gen`` by the
    same steps plus a flush; psycopg's own must still be those steps (once fixed upstream, the
    patch can go)."""
    assert _body(_method_source(BasePipeline, "_sync_gen")) == [
        "self._enqueue_sync()",
        "yield from self._communicate_gen()",
        "yield from self._fetch_gen(flush=False)",
    ]
    pipeline_flush.install()
    assert BasePipeline._sync_gen is pipeline_flush._sync_gen



def test_the_pool_check_replaced_for_idle_only_pings_is_the_one_getconn_calls() -> None:
    """infrastructure/pool_checks.py sets ``pool._check`` on eventsourcing's pools: psycopg_pool
    must keep the check in that attribute and call it on every connection it hands out."""
    pool = ConnectionPool("", open=False, check=ConnectionPool.check_connection)
    assert pool._check is ConnectionPool.check_connection
    assert "self._check(conn)" in _body(inspect.getsource(ConnectionPool._check_connection))
    handing_out = inspect.getsource(ConnectionPool._getconn_with_check_loop)
    assert "self._check_connection(conn)" in _body(handing_out)
