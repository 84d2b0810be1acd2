"""An outcome whose recording fails for a while is recorded when the database recovers.

The failure is injected in the real database: a trigger on the events table rejects the
execution's terminal event until the test drops it.
"""

from collections.abc import Iterator
from uuid import UUID

import psycopg
import pytest

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.ids import execution_id_for
from domain.request import RequestSpec
from domain.service_call import Status
from harness.target_server import TargetServer
from infrastructure.container import Container
from tests.support.db_queries import rows, topics
from tests.support.waiting import wait_terminal, wait_until

TENANT = "t-record"
REJECTED_TOPIC = "duecall:Execution.Succeeded"
_INSTALL = f"""
CREATE SEQUENCE IF NOT EXISTS duecall_test_rejections;
CREATE OR REPLACE FUNCTION duecall_test_reject() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('duecall_test_rejections');  -- not rolled back: counts the attempts
    RAISE EXCEPTION 'injected failure: events table unavailable';
END $$;
CREATE TRIGGER duecall_test_reject BEFORE INSERT ON duecall_events
    FOR EACH ROW WHEN (NEW.topic = '{REJECTED_TOPIC}') EXECUTE FUNCTION duecall_test_reject();
"""
_REMOVE = """
DROP TRIGGER IF EXISTS duecall_test_reject ON duecall_events;
DROP FUNCTION IF EXISTS duecall_test_reject();
DROP SEQUENCE IF EXISTS duecall_test_rejections;
"""


class Outage:
    """Rejects the terminal execution event in the real database until ended."""

    def __init__(self, url: str) -> None:
        self._conn = psycopg.connect(url, autocommit=True)

    def begin(self) -> None:
        self._conn.execute(_INSTALL)

    def end(self) -> None:
        self._conn.execute(_REMOVE)

    def rejections(self) -> int:
        row = self._conn.execute(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM duecall_test_rejections"
        ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.end()
        self._conn.close()


@pytest.fixture
def outage(container: Container) -> Iterator[Outage]:
    injected = Outage(container.database_url)
    try:
        yield injected
    finally:
        injected.close()


def _attempt_rows(url: str, call_id: UUID) -> int:
    """The call's attempt message: ``execute``, or ``start`` while its start is deferred."""
    sql = (
        "SELECT count(*) FROM duecall_outbox"
        " WHERE kind IN ('start', 'execute') AND service_call_id = %s"
    )
    return int(rows(url, sql, call_id)[0][0])


def test_an_outcome_that_fails_to_record_is_recorded_once_the_database_recovers(
    container: Container, outage: Outage
) -> None:
    url = container.database_url
    with TargetServer() as target:
        call, _ = container.service_calls.submit(
            SubmitServiceCall(TENANT, "outage", RequestSpec("GET", f"{target.url}/ok"), utcnow())
        )
        execution_id = execution_id_for(call.id, 1)
        outage.begin()
        container.start_workers()

        target.wait_for(1, path="/ok", timeout=10)
        wait_until(lambda: outage.rejections() >= 1, timeout=10)
        # While the outage lasts, the attempt is neither finished nor forgotten: either the
        # worker keeps trying to record it, or its message is still there to be claimed.
        wait_until(
            lambda: outage.rejections() >= 2 or _attempt_rows(url, call.id) == 0, timeout=10
        )
        assert _attempt_rows(url, call.id) == 1 or REJECTED_TOPIC in topics(url, execution_id)
        outage.end()

        final = wait_terminal(container, TENANT, call.id, timeout=15)

    assert final.status == Status.SUCCEEDED
    assert topics(url, execution_id) == ["duecall:Execution.Started", REJECTED_TOPIC]
    assert _attempt_rows(url, call.id) == 0
