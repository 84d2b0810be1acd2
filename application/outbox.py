"""The transactional outbox: messages between modules, written in the same transaction as
the events that cause them, and the port that claims them.

A message is work to do: ``start`` (timer: a due attempt), ``execute`` (make the request),
``schedule`` (a schedule's next fire, or a fired call's or run's outcome for it) or
``workflow`` (a step's call's outcome for its workflow run); an attempt's outcome
is decided in the transaction that records it. Workers claim available
messages under a lease; the transaction that records the events a message caused also
deletes it (``OutboxChanges.consume``) and adds the messages those events cause
(``OutboxChanges.publish``). A worker that dies loses only its lease.

Here too: building a call's ``start`` and ``execute`` messages and reading their payloads,
and ``record``: saving aggregates with what else their transaction writes
(``TransactionEffects``: the outbox changes, Idempotency-Keys, registry rows), one log line
per change.
"""

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast
from uuid import UUID

import structlog
from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import Recording, StoredEvent

from application.idempotency import IdempotencyRecord
from domain.execution import Execution
from domain.request import RequestSpec
from domain.service_call import ServiceCall

START = "start"
EXECUTE = "execute"
# a schedule's work (its ``service_call_id`` is the schedule's id): a nominal time to fire at,
# or a fired call's terminal outcome reported back (application/schedules.py)
SCHEDULE = "schedule"
# a workflow run's work (its ``service_call_id`` is the run's id): a step's call's terminal
# outcome, with the final attempt's response (application/workflows.py)
WORKFLOW = "workflow"
KINDS = (START, EXECUTE, SCHEDULE, WORKFLOW)
# a payload field: the message's key, by which a later transaction may withdraw it
# (``OutboxChanges.withdraw``) without knowing its id (a sequence gives ids at insert)
WITHDRAW_KEY = "withdraw_key"


@dataclass(frozen=True)
class ClaimRead:
    """What a ``start`` claim read with a message: its call's recorded events and the circuit
    registered for its tenant and host (None: the host has none)."""

    events: tuple[StoredEvent, ...]
    circuit_id: UUID | None


@dataclass(frozen=True)
class OutboxMessage:
    kind: str
    tenant_id: str
    service_call_id: UUID
    attempt: int
    available_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    host: str = ""
    lease_seconds: float | None = None
    id: int | None = None
    claims: int = 0
    due_at: datetime | None = None
    # a ``start`` claim's read of the message's call, in the claim's own snapshot (None: not
    # read with it); good only for a start made at once (the timer drops it from those held)
    read: ClaimRead | None = field(default=None, compare=False, repr=False)


def unread(message: OutboxMessage) -> OutboxMessage:
    """The message without what its claim read (stale once the message is held a while, or
    after a write conflict): its call is then read anew."""
    return message if message.read is None else replace(message, read=None)


def still_leased(messages: Sequence[OutboxMessage], margin: float = 1.0) -> list[OutboxMessage]:
    """The claimed messages whose leases (``available_at`` after a claim) last at least
    ``margin`` seconds more: work a worker may still do itself (after a database outage, say)
    instead of leaving it for the lease to end."""
    limit = datetime.now(UTC) + timedelta(seconds=margin)
    return [m for m in messages if m.available_at > limit]


# -- the messages of one call: building and reading them --------------------------------------
# The W3C traceparent of the API request that submitted the call (tracing on only): carried
# from message to message of the call, so that each attempt's span continues that trace.
TRACE_PARENT = "trace_parent"
STARTED_VERSION = "started_version"  # on an early start's execute message: see leased_here


def start_message(call: ServiceCall, trace_parent: str | None = None) -> OutboxMessage:
    """The timer message for the call's scheduled attempt."""
    return OutboxMessage(
        START,
        call.tenant_id,
        call.id,
        call.attempt,
        available_at=call.due_at,
        due_at=call.due_at,
        host=call.request.host,
        payload=_traced({}, trace_parent),
    )


SCHEDULE_ORIGIN = "schedule:"  # a fired call's ``origin``: this and the schedule's id
WORKFLOW_ORIGIN = "workflow:"  # a step's call's ``origin``: this and the run's id
ORIGIN = "origin"  # on an ``execute`` message: its call's origin, if a producer made it
# on an ``execute`` message: its response is recorded sealed (the call's ``seal_response``)
SEAL_RESPONSE = "seal_response"


def producer_outcome_message(
    call: ServiceCall, last: Execution | None = None
) -> OutboxMessage | None:
    """For a call a schedule fired or a workflow step made, now over (succeeded, failed or
    cancelled), the message that tells its producer; else None. ``last``: the call's final
    attempt, recorded in the same transaction (None: the call ended without one, cancelled):
    a workflow step's outcome carries its response (status, headers, body snippet, already
    bounded by the sender's ``response_snippet_bytes``) for the step's ``success`` and
    outputs."""
    origin = call.origin
    if origin is None or not call.is_terminal:
        return None
    if origin.startswith(SCHEDULE_ORIGIN):
        kind, producer = SCHEDULE, origin.removeprefix(SCHEDULE_ORIGIN)
        outcome: dict[str, Any] = {"call_id": str(call.id), "status": call.status.value}
    elif origin.startswith(WORKFLOW_ORIGIN):
        kind, producer = WORKFLOW, origin.removeprefix(WORKFLOW_ORIGIN)
        outcome = step_outcome(call, last)
    else:
        return None
    return _to_producer(kind, call.tenant_id, producer, outcome)


# a workflow run's events that end it (``WorkflowRun.Succeeded``, ``Failed``, ``Cancelled``)
_RUN_ENDINGS = frozenset({"Succeeded", "Failed", "Cancelled"})


def run_outcome_messages(runs: Iterable[Any]) -> list[OutboxMessage]:
    """For each workflow run a schedule started (origin ``schedule:<id>``) that its pending
    events end (not yet recorded: call before ``record``), the ``schedule`` message that
    tells the schedule its terminal status, written with those events."""
    messages = []
    for run in runs:
        origin = run.origin
        if origin is None or not origin.startswith(SCHEDULE_ORIGIN) or not run.is_terminal:
            continue
        if any(type(e).__name__ in _RUN_ENDINGS for e in run.pending_events):
            outcome = {"run_id": str(run.id), "status": run.status.value}
            producer = origin.removeprefix(SCHEDULE_ORIGIN)
            messages.append(_to_producer(SCHEDULE, run.tenant_id, producer, outcome))
    return messages


def _to_producer(
    kind: str, tenant_id: str, producer: str, outcome: dict[str, Any]
) -> OutboxMessage:
    """A terminal outcome for the producer (a schedule, a workflow run) ``producer`` names,
    available at once."""
    now = datetime.now(UTC)
    return OutboxMessage(
        kind,
        tenant_id,
        UUID(producer),
        0,
        available_at=now,
        due_at=now,
        payload={"outcome": outcome},
    )


def step_outcome(call: ServiceCall, last: Execution | None) -> dict[str, Any]:
    """A workflow step's call's outcome as its message carries it: the status, and the
    final attempt's response (when that attempt is the call's last one and is finished)."""
    ours = (
        last is not None
        and last.is_finished
        and (last.id, last.attempt) == (call.execution_id, call.attempt)
    )
    final = last if ours else None
    return {
        "call_id": str(call.id),
        "status": call.status.value,
        "status_code": call.last_status_code if final is None else final.status_code,
        "headers": {} if final is None else dict(final.response_headers or {}),
        "body": None if final is None else final.body_snippet,
        "error_kind": call.last_error_kind,
    }


def execute_message(
    tenant_id: str,
    call_id: UUID,
    attempt: int,
    execution_id: UUID,
    request: RequestSpec,
    now: datetime,
    grace_seconds: float,
    trace_parent: str | None = None,
    correlation_id: str | None = None,
    origin: str | None = None,
    seal_response: bool = False,
) -> OutboxMessage:
    payload: dict[str, Any] = {"execution_id": str(execution_id), "request": request.as_dict()}
    if correlation_id is not None:
        payload["correlation_id"] = correlation_id
    if origin is not None:
        payload[ORIGIN] = origin
    if seal_response:
        payload[SEAL_RESPONSE] = True
    return OutboxMessage(
        EXECUTE,
        tenant_id,
        call_id,
        attempt,
        available_at=now,
        host=request.host,
        lease_seconds=request.timeout_seconds + grace_seconds,
        payload=_traced(payload, trace_parent),
    )


def leased_here(
    execute: OutboxMessage, start: OutboxMessage, started_version: int
) -> OutboxMessage:
    """``execute`` as a message this worker already holds (a timer's early start, handed to its
    own execution loop): leased from its due time for the attempt's timeout and grace, claimed
    once, with the negated id of the ``start`` message it replaces (deleted in the same
    transaction). Negated, not reused: a timer still holding that ``start`` message (its lease
    ran out and another timer started the call) consumes it by id as stale, and must not
    delete this one (the call would be left started, never made).

    Its lease is what keeps it durable: if this worker dies, another one claims it when the
    lease ends and makes the attempt then (late, never lost); a worker stopping hands it back
    (available at its due time). ``started_version``: the call's version once started (an
    event after it, a cancel, means the attempt is not to be made)."""
    assert start.id is not None
    assert execute.lease_seconds is not None
    due = execute.available_at
    return replace(
        execute,
        id=-start.id,  # unique too: the sequence only hands out positive ids
        claims=1,
        due_at=due,
        payload={**execute.payload, STARTED_VERSION: started_version},
        available_at=due + timedelta(seconds=execute.lease_seconds),
    )


def deferred_start(
    execute: OutboxMessage, start: OutboxMessage, version: int
) -> OutboxMessage:
    """``execute`` for an attempt whose start is not recorded yet (a timer's deferred start:
    ``ServiceCalls.start_due``): it keeps the kind, id, claims and lease of the ``start``
    message it stands for, so the transaction that records the start (with the outcome, or
    ``record_running`` for a slow attempt) consumes that message, and a worker that dies
    meanwhile leaves it to its lease. ``version``: the call's version, still scheduled."""
    leased = leased_here(execute, start, version)
    return replace(leased, kind=START, id=start.id, available_at=start.available_at)


def is_unstarted(message: OutboxMessage) -> bool:
    """Is this an attempt's message whose call is not yet recorded as started?"""
    return message.kind == START


def running(deferred: OutboxMessage) -> OutboxMessage:
    """A deferred start's ``execute`` message once its start is recorded: leased here for the
    attempt's timeout and grace from its due time (``leased_here``)."""
    assert deferred.id is not None
    assert deferred.due_at is not None
    assert deferred.lease_seconds is not None
    return replace(
        deferred,
        kind=EXECUTE,
        id=-deferred.id,
        available_at=deferred.due_at + timedelta(seconds=deferred.lease_seconds),
    )


def request_of(message: OutboxMessage) -> RequestSpec:
    return RequestSpec.restored(**message.payload["request"])


def execution_id_of(message: OutboxMessage) -> UUID:
    return UUID(message.payload["execution_id"])


def correlation_id_of(message: OutboxMessage) -> str | None:
    """The call's correlation id, on an ``execute`` message."""
    value: str | None = message.payload.get("correlation_id")
    return value


def seals_response(message: OutboxMessage) -> bool:
    """Is the response to this ``execute`` message's request recorded sealed?"""
    return message.payload.get(SEAL_RESPONSE) is True


def is_fire(message: OutboxMessage) -> bool:
    """Is this ``execute`` message's call a schedule's fire?"""
    return str(message.payload.get(ORIGIN, "")).startswith(SCHEDULE_ORIGIN)


def is_step(message: OutboxMessage) -> bool:
    """Is this ``execute`` message's call a workflow run's step?"""
    return str(message.payload.get(ORIGIN, "")).startswith(WORKFLOW_ORIGIN)


def started_version_of(message: OutboxMessage) -> int | None:
    value: int | None = message.payload.get(STARTED_VERSION)
    return value


def trace_parent_of(message: OutboxMessage) -> str | None:
    value: str | None = message.payload.get(TRACE_PARENT)
    return value


def _traced(payload: dict[str, Any], trace_parent: str | None) -> dict[str, Any]:
    if trace_parent is not None:
        payload[TRACE_PARENT] = trace_parent
    return payload


@dataclass(frozen=True)
class OutboxChanges:
    """Messages a transaction consumes and publishes, with its events (``TransactionEffects``)."""

    consume: Sequence[int] = ()
    publish: Sequence[OutboxMessage] = ()
    # the keys (``WITHDRAW_KEY``) of messages published earlier that are no longer work to
    # do, deleted wherever they are (claimed or not; gone already is no error): a workflow
    # step's timeout once the step has ended
    withdraw: Sequence[str] = ()
    # the transaction ends attempts in flight (consumes ``execute`` messages): a timer held
    # back by a concurrency limit, in any worker process, looks again
    frees_slots: bool = False


class Claimed(list[OutboxMessage]):
    """Claimed messages; for a ``start`` or ``schedule`` claim also ``next_in``: seconds from
    the claim until the next message of its kind becomes available (None: none, or an
    ``execute`` claim). A ``start`` claim counts the ones it claimed; a ``schedule`` claim
    does not."""

    def __init__(self, messages: Iterable[OutboxMessage] = (), next_in: float | None = None):
        super().__init__(messages)
        self.next_in = next_in


class Outbox(Protocol):
    def claim(self, kind: str, limit: int, lookahead: float = 0.0) -> Claimed:
        """Lease up to ``limit`` messages of ``kind`` available within ``lookahead`` seconds
        (oldest due first); a lease runs from the later of now and the message's due time.
        A ``start`` or ``schedule`` claim also tells when the next one becomes available."""

    def release(self, messages: Sequence[OutboxMessage]) -> int:
        """Hand claimed messages back before their leases end (a worker stopping): available
        again now, or at their due time if it is ahead; how many were handed back."""

    def changed_since(self, versions: dict[UUID, int]) -> set[UUID]:
        """The aggregates among ``versions`` (id → version) with events recorded after it."""

    def wait(self, kind: str, timeout: float, *, or_slot_freed: bool = False) -> None:
        """Block until a message of ``kind`` may be available, or ``timeout`` passes; with
        ``or_slot_freed``, also until some worker ends an attempt in flight."""

    def wake(self, kind: str) -> None:
        """End a ``wait`` for ``kind`` now (a loop that is stopping)."""


# -- recording: the events with what else their transaction writes ----------------------------

log = structlog.get_logger("duecall.events")


class Recordable(Protocol):
    def collect_events(self) -> Sequence[Any]: ...

    def log_context(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class NewCircuit:
    """A circuit registered by the transaction (listed by ``GET /v1/circuits``)."""

    tenant_id: str
    host: str
    circuit_id: UUID


@dataclass(frozen=True)
class TransactionEffects:
    """What a save writes besides its events, in their transaction (the recorder's
    ``insert_events`` receives it as ``effects``): outbox changes, the Idempotency-Keys of new
    calls, and new circuits and tenants for their registries."""

    outbox: OutboxChanges = field(default_factory=OutboxChanges)
    idempotency: Sequence[IdempotencyRecord] = ()
    circuits: Sequence[NewCircuit] = ()
    tenants: Sequence[str] = ()

    def __bool__(self) -> bool:
        outbox = self.outbox
        return bool(outbox.consume or outbox.publish or outbox.withdraw or self.idempotency
                    or self.circuits or self.tenants)


NO_EFFECTS = TransactionEffects()


def record(
    app: Application[UUID],
    aggregates: Iterable[Recordable],
    effects: TransactionEffects = NO_EFFECTS,
) -> int | None:
    """Record the aggregates' new events and their effects in one transaction; the log
    position (notification id) of the last event recorded, if any. The events go into the
    log in the order they happened (each aggregate's in order of version): an attempt started
    before its call's deferred ``Started`` was recorded reads in history as it happened."""
    pending = list(heapq.merge(
        *([(aggregate, e) for e in aggregate.collect_events()] for aggregate in aggregates),
        key=lambda pair: pair[1].timestamp,
    ))
    if not pending and not effects:
        return None
    recordings = _save(app, pending, effects=effects)
    for aggregate, recorded in pending:
        log.info(
            type(recorded).__qualname__,
            version=recorded.originator_version,
            **aggregate.log_context(),
        )
    return max((r.notification.id for r in recordings), default=None)


def _save(
    app: Application[UUID],
    pending: list[tuple[Recordable, Any]],
    effects: TransactionEffects,
) -> list[Recording[UUID]]:
    """``app.save(*aggregates, effects=effects)``, step for step, without ``collect_events``'
    runtime Protocol checks (``isinstance(event, DomainEventProtocol)`` per event: a large share
    of a batch submit's time); the aggregates go with their events, as ``save`` would put them,
    so ``snapshotting_intervals`` applies (tests/unit/test_library_contracts.py pins the steps)."""
    processing: ProcessingEvent[UUID] = ProcessingEvent()
    processing.events.extend(e for _, e in pending)
    processing.aggregates.update((e.originator_id, cast(Any, a)) for a, e in pending)
    processing.saved_kwargs["effects"] = effects
    recordings = app._record(processing)
    app._take_snapshots(processing)
    app._notify(recordings)
    app.notify(processing.events)  # deprecated, still called by save()
    return recordings
