"""Batched read-model writes: the same rows whatever the batch boundaries (a row inserted and
updated in one batch or in several, an interval closed in its own batch or a later one), NULLs
written where an event clears a value, and awkward text kept byte for byte."""

from datetime import timedelta

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.request import RequestSpec
from infrastructure.container import Container
from projections.read_models import PROJECTIONS
from tests.support.audit_scenario import run_audit_scenario
from tests.support.db_queries import rows
from tests.support.read_models import catch_up, checksums, reset_read_models
from tests.support.workload import FAST_RETRIES, run_until_idle, submit_calls

NAME = "it's \"quoted\" back\\slash \\n tab\tnew\nline ünïcødé ✓ 日本 🙂 {a,b} NULL"
TAGS = ["{a,b}", "NULL", "", "\"quoted\"", "back\\slash", "ünï ✓", "new\nline", "a,b"]
CORRELATION = "corr \\N 'x' \"y\" ✓"


def _submit_awkward(container: Container) -> None:
    container.service_calls.submit(SubmitServiceCall(
        tenant_id="t1", name=NAME, tags=TAGS, correlation_id=CORRELATION,
        request=RequestSpec("POST", "http://a.example/ok", timeout_seconds=5),
        due_at=utcnow() - timedelta(seconds=1), retry_policy=FAST_RETRIES,
    ))


def test_any_batch_size_folds_to_the_same_rows(rm_container: Container, database_url: str) -> None:
    _submit_awkward(rm_container)
    submit_calls(rm_container, 9)
    run_until_idle(rm_container)
    audit = run_audit_scenario(rm_container, tenant="t1")  # failed, retried, then succeeded
    catch_up(rm_container)
    expected = checksums(database_url)

    for size in (1, 2, 3, 7):
        reset_read_models(rm_container)
        for projection in PROJECTIONS:
            rm_container.read_models.runner_for(projection, size).catch_up(lambda _: None)
        assert checksums(database_url) == expected, size

        call = rows(database_url, "SELECT tags, correlation_id, finished_at IS NOT NULL, "
                    "failure_reason, last_error_kind FROM duecall_rm_service_calls "
                    "WHERE name = %s", NAME)
        assert call == [(TAGS, CORRELATION, True, None, None)]
        assert rows(database_url, "SELECT DISTINCT name FROM duecall_rm_executions "
                    "WHERE name LIKE 'it''s%%'") == [(NAME,)]
        assert rows(database_url, "SELECT DISTINCT name FROM duecall_rm_stats_minute "
                    "WHERE name LIKE 'it''s%%'") == [(NAME,)]
        retried = rows(database_url, "SELECT status, failure_reason, finished_at IS NOT NULL "
                       "FROM duecall_rm_service_calls WHERE id = %s", audit.call_id)
        assert retried == [("succeeded", None, True)]  # Failed's reason cleared by the retry
        intervals = rows(database_url, "SELECT count(*) FILTER (WHERE valid_to = 'infinity'), "
                         "count(DISTINCT service_call_id) FROM duecall_rm_status_intervals")
        assert intervals[0][0] == intervals[0][1]  # exactly one open interval per call
