"""Old event shapes in Postgres: the v1 fixtures, stored as rows, load through the repository
(upcast) and read back as recorded (not upcast) in the audit history."""

import psycopg

from application.audit import AuditTrail
from infrastructure.chain_verifier import verify
from infrastructure.container import Container
from infrastructure.event_log import PostgresEventLog
from tests.support.event_fixtures import V1_CALL, V1_HELD, V1_LIMITED, stored_events


def _load_fixtures(container: Container) -> AuditTrail:
    container.service_calls.recorder.insert_events(stored_events())
    return AuditTrail(container.service_calls, PostgresEventLog.of(container.service_calls))


def test_v1_rows_load_through_the_repository(container: Container) -> None:
    audit = _load_fixtures(container)
    call = container.service_calls.get_call("t1", V1_CALL)
    assert (call.status, call.attempt, call.version) == ("succeeded", 3, 12)
    assert container.service_calls.get_call("t1", V1_HELD).status == "cancelled"
    assert container.service_calls.get_call("t2", V1_LIMITED).attempt == 2
    then = audit.call_at("t1", V1_CALL, version=5)
    assert (then.status, then.attempt) == ("scheduled", 2)
    upcast = list(container.service_calls.repository.event_store.get(V1_CALL, gt=4, lte=5))
    assert upcast[0].scheduled_by == "duecall"  # type: ignore[attr-defined]


def test_the_history_shows_v1_rows_as_they_were_recorded(container: Container) -> None:
    history = _load_fixtures(container).history("t1", V1_CALL)
    scheduled = [e for e in history if e.type == "ServiceCall.Scheduled"]
    assert [e.schema_version for e in scheduled] == [1, 1, 1]
    assert all("scheduled_by" not in e.payload for e in scheduled)
    assert len(history) == 12 + 6  # the call's events and its three executions'


def test_v1_rows_are_chained_and_indexed_by_tenant(
    container: Container, database_url: str
) -> None:
    _load_fixtures(container)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert verify(conn).first is None
        tenants: dict[object, object] = dict(conn.execute(
            "SELECT originator_id, tenant_id FROM duecall_event_hashes WHERE originator_id = "
            "ANY(%s) AND originator_version = 3", ([V1_CALL, V1_LIMITED],)).fetchall())
    assert tenants == {V1_CALL: "t1", V1_LIMITED: "t2"}
