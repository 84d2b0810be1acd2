"""A read model never stalls for everyone: long values fold, an event a projection cannot fold
is recorded and passed over (the other tenants' calls still appear), it is surfaced in the
status, and a fix plus a rebuild recovers it; a database outage is never recorded as one."""

import random
import string
from collections.abc import Sequence
from uuid import UUID

import psycopg
import pytest
from psycopg import Cursor
from psycopg.rows import DictRow
from structlog.testing import capture_logs

from infrastructure.container import Container
from infrastructure.database import DATABASE_UNAVAILABLE
from projections.read_models import PROJECTIONS
from projections.runner import LogEvent
from projections.service_calls import ServiceCallFilters, list_service_calls
from tests.support.projection_failures import (
    Refusing,
    position_of,
    submit,
    submit_unfoldable,
)
from tests.support.read_models import catch_up, checksums, reset_read_models

# 4,000 characters that do not compress (an index entry keeps them whole).
LONG = "".join(random.Random(15).choices(string.ascii_letters + string.digits, k=4000))


def _listed(container: Container, tenant: str, **filters: str) -> set[UUID]:
    with container.read_models.reading("service_calls") as (curs, _):
        page = list_service_calls(curs, tenant, ServiceCallFilters(**filters))  # type: ignore[arg-type]
    return {item["id"] for item in page.items}


def _status(container: Container, name: str = "service_calls") -> tuple[int, int]:
    """(unresolved failures, lag in events) of one read model."""
    found = next(s for s in container.read_models.status() if s.name == name)
    return found.failures, found.lag_events


def test_a_call_with_4000_character_values_is_listed_and_found_by_them(
    rm_container: Container,
) -> None:
    big = submit(rm_container, "t-big", name=LONG, tags=[LONG, "short"], correlation_id=LONG)
    other = submit(rm_container, "t-other")
    catch_up(rm_container)

    assert _listed(rm_container, "t-other") == {other}
    assert _listed(rm_container, "t-big", tag=LONG) == {big}
    assert _listed(rm_container, "t-big", name=LONG) == {big}
    assert _listed(rm_container, "t-big", correlation_id=LONG) == {big}
    assert _listed(rm_container, "t-big", tag=LONG[:200]) == set()  # a prefix is not the tag
    assert _listed(rm_container, "t-big", name=LONG[:-1] + "!") == set()
    assert {s.failures for s in rm_container.read_models.status()} == {0}


def test_an_event_a_read_model_cannot_fold_is_recorded_and_the_other_tenants_calls_appear(
    rm_container: Container, database_url: str
) -> None:
    bad = submit_unfoldable(rm_container, "t-bad")
    good = submit(rm_container, "t-good")
    with capture_logs() as logs:
        catch_up(rm_container)

    assert _listed(rm_container, "t-good") == {good}
    assert _status(rm_container) == (1, 0)
    [failure] = rm_container.read_models.failures("service_calls")
    assert (failure.position, failure.topic, failure.originator_id, failure.tenant_id) == (
        position_of(database_url, bad), "duecall:ServiceCall.Submitted", bad, "t-bad"
    )
    assert failure.error.startswith("InvalidDatetimeFormat")
    assert "soon" in failure.error
    assert failure.failed_at is not None
    logged = [e for e in logs if e["event"] == "projection_event_failed"]
    assert {(e["projection"], e["position"]) for e in logged} >= {
        ("service_calls", failure.position)
    }


def test_a_batch_with_a_bad_event_gives_the_rows_of_one_event_batches(
    rm_container: Container, database_url: str
) -> None:
    for i in range(5):
        submit(rm_container, "t-good", name=f"before-{i}")
    submit_unfoldable(rm_container, "t-bad")
    for i in range(5):
        submit(rm_container, "t-good", name=f"after-{i}")
    for projection in PROJECTIONS:
        rm_container.read_models.runner_for(projection, 1000).catch_up(lambda _: None)
    whole = checksums(database_url), rm_container.read_models.failures()

    reset_read_models(rm_container)
    for projection in PROJECTIONS:
        rm_container.read_models.runner_for(projection, 1).catch_up(lambda _: None)
    one_by_one = checksums(database_url), rm_container.read_models.failures()

    assert whole[0] == one_by_one[0]
    key = [(f.projection, f.position, f.error) for f in whole[1]]
    assert key == [(f.projection, f.position, f.error) for f in one_by_one[1]]
    assert len(_listed(rm_container, "t-good")) == 10


def test_a_rebuild_records_a_still_failing_event_again_and_a_fixed_one_is_folded(
    rm_container: Container,
) -> None:
    refused = submit(rm_container, "t-bad")
    good = submit(rm_container, "t-good")
    refusing = Refusing(rm_container.read_models.runners["service_calls"].projection, refused)
    rm_container.read_models.runners["service_calls"] = (
        rm_container.read_models.runner_for(refusing)
    )
    rm_container.read_models.rebuild("service_calls")
    assert _listed(rm_container, "t-bad") == set()
    assert _listed(rm_container, "t-good") == {good}
    assert _status(rm_container) == (1, 0)

    rm_container.read_models.rebuild("service_calls")  # still failing: recorded once again
    assert _status(rm_container) == (1, 0)

    refusing.broken = False  # the fix
    rm_container.read_models.rebuild("service_calls")
    assert _listed(rm_container, "t-bad") == {refused}
    assert _status(rm_container) == (0, 0)


@pytest.mark.parametrize(
    "outage",
    [psycopg.OperationalError("connection lost"),
     psycopg.errors.AdminShutdown("terminating connection due to administrator command")],
    ids=["connection", "shutdown"],
)
def test_a_database_outage_is_retried_and_never_recorded_as_a_failure(
    rm_container: Container, outage: Exception
) -> None:
    call = submit(rm_container, "t1")
    inner = rm_container.read_models.runners["service_calls"].projection

    class Away(Refusing):
        def fold(self, curs: Cursor[DictRow], events: Sequence[LogEvent]) -> None:
            raise outage

    runner = rm_container.read_models.runner_for(Away(inner, call))
    with pytest.raises(DATABASE_UNAVAILABLE):
        runner.run_batch()
    assert _status(rm_container)[0] == 0
    assert _status(rm_container)[1] > 0  # not passed over: tried again later
