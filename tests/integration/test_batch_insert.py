"""A batch's events, outbox messages and idempotency keys are each inserted by one statement
(an array per column, sent binary): the rows must be exactly those of a row-by-row insert —
the same bytes (the hash chain's input), in the same order (the same positions and ids)."""

from datetime import timedelta

from application.clock import utcnow
from application.commands import SubmitServiceCall
from application.outbox import START, OutboxChanges, OutboxMessage, TransactionEffects, record
from domain.ids import new_service_call_id
from domain.request import RequestSpec
from domain.service_call import ServiceCall
from infrastructure.container import Container
from tests.support.db_queries import rows

TENANT = "t-batch-insert"
URL = "http://127.0.0.1:9/never-called"  # nothing here is ever sent
AWKWARD = ['a"b', "back\\slash", "{braces},commas", "NULL", "ünïcödé ✓", "tab\tand\\\\two", ""]


def _latin1(text: str) -> str:
    """``text`` as a header value may hold it (no tab here, nothing beyond Latin-1)."""
    return text.replace("\t", " ").encode("latin-1", errors="replace").decode("latin-1")


def test_events_are_stored_byte_for_byte_in_the_order_given(container: Container) -> None:
    app = container.service_calls
    due = utcnow() + timedelta(days=1)
    calls = [
        ServiceCall.submit(
            id=new_service_call_id(),
            tenant_id=TENANT,
            name=text or "empty",
            request=RequestSpec(
                "POST", URL, {"X-Text": _latin1(text)}, body=f'{{"v": "{text}"}}'
            ),
            due_at=due,
            tags=[text, "x"],
        )
        for text in AWKWARD
    ]
    events = [e for call in calls for e in call.pending_events]
    expected = [app.mapper.to_stored_event(e) for e in events]

    position = record(app, calls)

    stored = rows(
        container.database_url,
        "SELECT notification_id, originator_id, originator_version, topic, state "
        "FROM duecall_events WHERE originator_id = ANY(%s) ORDER BY notification_id",
        [c.id for c in calls],
    )
    assert [(r[1], r[2], r[3], bytes(r[4])) for r in stored] == [
        (e.originator_id, e.originator_version, e.topic, e.state) for e in expected
    ]
    positions = [int(r[0]) for r in stored]
    assert positions == list(range(positions[0], positions[0] + len(events)))
    assert position == positions[-1]
    assert app.repository.get(calls[1].id).name == "back\\slash"  # and it reads back


def test_a_batch_publishes_its_messages_in_order_with_their_values(container: Container) -> None:
    due = utcnow() + timedelta(hours=2)
    commands = [
        SubmitServiceCall(
            TENANT, f"m{i}", RequestSpec("POST", f"http://h{i}.example:9/x"), due,
            trace_parent=f"00-{i:032x}-{i:016x}-01" if i % 2 else None,
        )
        for i in range(1, 6)
    ]
    submitted = container.service_calls.submit_many(commands)

    found = rows(
        container.database_url,
        "SELECT service_call_id, kind, tenant_id, attempt, due_at, available_at, "
        "lease_seconds, claims, host, payload FROM duecall_outbox "
        "WHERE service_call_id = ANY(%s) ORDER BY id",
        [call.id for call, _ in submitted],
    )
    assert [r[0] for r in found] == [call.id for call, _ in submitted]
    for (call, created), row, command in zip(submitted, found, commands, strict=True):
        assert created
        assert row[1:9] == (START, TENANT, 1, call.due_at, call.due_at, 30.0, 0, call.request.host)
        assert row[9] == ({"trace_parent": command.trace_parent} if command.trace_parent else {})


def test_a_single_message_is_still_written(container: Container) -> None:
    app = container.service_calls
    call = ServiceCall.submit(
        id=new_service_call_id(), tenant_id=TENANT, name="one",
        request=RequestSpec("GET", URL), due_at=utcnow() + timedelta(hours=1),
    )
    one = OutboxMessage(START, TENANT, call.id, 1, available_at=call.due_at, payload={"k": 1})
    record(app, [call], TransactionEffects(OutboxChanges(publish=[one])))
    found = rows(
        container.database_url,
        "SELECT kind, lease_seconds, payload FROM duecall_outbox WHERE service_call_id = %s",
        call.id,
    )
    assert found == [(START, 30.0, {"k": 1})]


def test_two_items_of_one_batch_with_the_same_key_make_one_call(container: Container) -> None:
    due = utcnow() + timedelta(hours=1)
    command = SubmitServiceCall(
        TENANT, "dup", RequestSpec("GET", URL), due, idempotency_key="k-dup", request_hash="h"
    )
    other = SubmitServiceCall(
        TENANT, "other", RequestSpec("GET", URL), due, idempotency_key="k-other",
        request_hash="h2",
    )
    submitted = container.service_calls.submit_many([command, other, command])

    (first, created_first), (second, _), (third, created_third) = submitted
    assert created_first
    assert not created_third
    assert third.id == first.id != second.id
    keys = rows(
        container.database_url,
        "SELECT key, service_call_id, request_hash FROM duecall_idempotency_keys "
        "WHERE tenant_id = %s ORDER BY key",
        TENANT,
    )
    assert keys == [("k-dup", first.id, "h"), ("k-other", second.id, "h2")]
