"""Orchestration: the ServiceCalls application, the one writer of events (calls, their
executions and circuits): submit, the lifecycle commands, starting due attempts, beginning
them (one Execution aggregate each) and recording their outcomes with what the policy decides.

One module over 300 lines on purpose: it is the one eventsourcing Application (the service
layer), and its use cases share its loading, its idempotency handling and its transactions.
"""

import copy
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import ClassVar
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from application.clock import utcnow
from application.commands import SubmitServiceCall
from application.conflicts import retry_on_conflict
from application.idempotency import IdempotencyKeyReusedError, IdempotencyKeys, IdempotencyRecord
from application.loading import fold_events, load_many
from application.outbox import (
    NewCircuit,
    OutboxChanges,
    OutboxMessage,
    Recordable,
    TransactionEffects,
    deferred_start,
    execute_message,
    execution_id_of,
    is_unstarted,
    leased_here,
    producer_outcome_message,
    record,
    request_of,
    running,
    start_message,
    trace_parent_of,
)
from application.ports import SecretBox
from domain.circuit import Circuit, CircuitBoard, CircuitOptions, circuit_id_for
from domain.errors import ServiceCallNotFoundError
from domain.execution import Execution
from domain.ids import execution_id_for, new_service_call_id
from domain.outcome import AttemptOutcome, AttemptResult, ErrorKind
from domain.request import RequestSpec
from domain.schedule import Schedule
from domain.service_call import ServiceCall, Status
from domain.workflow_run import WorkflowRun
from domain.workflow_stored_definition import StoredWorkflowDefinition

log = structlog.get_logger(__name__)
SUBMIT_CHUNK = 250  # calls per transaction: 500 events, well under the pipeline's limit
# Aggregates whose history keeps growing (a schedule ~2 events per fire, a circuit with its
# host's failures, a workflow run ~2 per step) get a snapshot every this many events; a
# call's history is short.
SNAPSHOT_EVERY = 50


class SubmittedCalls(list[tuple[ServiceCall, bool]]):
    """(call, created) per command, in order, and ``position``: a log position at or after
    every event of those calls (for read-your-writes): the last one recorded, or the head when
    a call existed before."""

    def __init__(
        self, results: Iterable[tuple[ServiceCall, bool]], position: int | None
    ) -> None:
        super().__init__(results)
        self.position = position


@dataclass
class Attempt:
    """A started execution, with the message that asked for it and the request to make.

    A deferred start (``is_unstarted(message)``: its call's start is recorded with its outcome,
    or by ``record_running`` if it takes long) may carry its ``call`` as the timer loaded it,
    still scheduled, so that recording needs no read; None: read it then."""

    message: OutboxMessage
    execution: Execution
    request: RequestSpec
    call: ServiceCall | None = None
    ended_at: datetime | None = None  # when its answer (or failure) came, if it has

    @property
    def idempotency_key(self) -> str:
        return f"{self.message.service_call_id}:{self.message.attempt}"


@dataclass(frozen=True)
class Decision:
    """What orchestration decided about some outcomes, to be saved with them: the aggregates it
    changed, the messages they cause, and the circuits it registered."""

    aggregates: Sequence[Recordable] = ()
    publish: Sequence[OutboxMessage] = ()
    circuits: Sequence[NewCircuit] = ()


class ServiceCalls(Application[UUID]):
    name = "duecall"
    snapshotting_intervals: ClassVar = {
        Schedule: SNAPSHOT_EVERY, Circuit: SNAPSHOT_EVERY, WorkflowRun: SNAPSHOT_EVERY,
        StoredWorkflowDefinition: SNAPSHOT_EVERY,
    }

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        secret_box: SecretBox,
        idempotency_keys: IdempotencyKeys | None = None,
        execution_grace_seconds: float = 30.0,
        circuit_options: CircuitOptions | None = None,
        max_deliveries: int = 3,
    ) -> None:
        """``max_deliveries``: claims of an attempt's ``execute`` message before it is failed
        as ``lost`` (its workers died or hung each time)."""
        super().__init__(env)
        self.max_deliveries = max_deliveries
        self.secret_box = secret_box
        self.idempotency_keys = idempotency_keys
        self.execution_grace_seconds = execution_grace_seconds
        self.circuit_options = circuit_options or CircuitOptions()

    def submit(self, command: SubmitServiceCall) -> tuple[ServiceCall, bool]:
        """Record a new call (or, for a repeated Idempotency-Key, return the original)."""
        return self.submit_many([command])[0]

    def submit_many(self, commands: Sequence[SubmitServiceCall]) -> SubmittedCalls:
        """Record many calls, ``SUBMIT_CHUNK`` per transaction; (call, created) for each.

        Keys seen before answer with their original call (or raise if the request differs);
        a key that a concurrent submit records first is found by retrying one by one.
        """
        results: dict[int, tuple[ServiceCall, bool]] = {
            i: (call, False) for i, call in self._originals(commands).items()
        }
        fresh = [(i, c) for i, c in enumerate(commands) if i not in results]
        positions = [self.recorder.max_notification_id()] if results else []
        for start in range(0, len(fresh), SUBMIT_CHUNK):
            chunk = fresh[start : start + SUBMIT_CHUNK]
            calls = [_new_call(command, self.secret_box) for _, command in chunk]
            keys = [
                IdempotencyRecord(c.tenant_id, c.idempotency_key, call.id, c.request_hash)
                for (_, c), call in zip(chunk, calls, strict=True)
                if c.idempotency_key is not None
            ]
            starts = OutboxChanges(
                publish=[
                    start_message(call, command.trace_parent)
                    for (_, command), call in zip(chunk, calls, strict=True)
                ]
            )
            try:
                effects = TransactionEffects(starts, idempotency=keys)
                positions.append(record(self, calls, effects))
            except IntegrityError:
                if not keys:
                    raise
                results.update(self._after_key_conflict(chunk))
                positions.append(self.recorder.max_notification_id())
                continue
            results.update((i, (call, True)) for (i, _), call in zip(chunk, calls, strict=True))
        return SubmittedCalls(
            (results[i] for i in range(len(commands))), max(filter(None, positions), default=None)
        )

    def get_call(self, tenant_id: str, call_id: UUID) -> ServiceCall:
        try:
            call: ServiceCall = self.repository.get(call_id)
        except AggregateNotFoundError:
            raise ServiceCallNotFoundError(call_id) from None
        if call.tenant_id != tenant_id:
            raise ServiceCallNotFoundError(call_id)
        return call

    def cancel(self, tenant_id: str, call_id: UUID, reason: str | None) -> ServiceCall:
        return self._command(tenant_id, call_id, lambda call: call.cancel(reason, utcnow()))

    def pause(self, tenant_id: str, call_id: UUID) -> ServiceCall:
        return self._command(tenant_id, call_id, lambda call: call.pause(utcnow()))

    def resume(self, tenant_id: str, call_id: UUID) -> ServiceCall:
        return self._command(tenant_id, call_id, lambda call: call.resume(utcnow()))

    def retry(
        self,
        tenant_id: str,
        call_id: UUID,
        due_at: datetime | None,
        trace_parent: str | None = None,
    ) -> ServiceCall:
        return self._command(
            tenant_id, call_id, lambda call: call.retry(utcnow(), due_at), trace_parent
        )

    def _command(
        self,
        tenant_id: str,
        call_id: UUID,
        apply: Callable[[ServiceCall], bool | None],
        trace_parent: str | None = None,
    ) -> ServiceCall:
        """Get the call, apply the command (False: it changed nothing), save with the timer
        message it needs; a write conflict with a worker is tried again from fresh state."""

        def once() -> ServiceCall:
            call = self.get_call(tenant_id, call_id)
            changed = apply(call) is not False
            follow = follow_ups([call] if changed else [], {call.id: trace_parent})
            record(self, [call], TransactionEffects(OutboxChanges(publish=follow)))
            return call

        return retry_on_conflict(once, f"service call {call_id}")

    def start_due(
        self,
        messages: Sequence[OutboxMessage],
        hand_off: Callable[[list[Attempt]], None] | None = None,
        *,
        defer: bool = False,
    ) -> None:
        """Timer: start the due attempts, and tell the execution module to make them.

        With ``hand_off`` (the timer's own execution loop), attempts may be started a moment
        before they are due (the timer's early start): each is recorded as started at its due
        time, its ``execute`` message is leased to this worker (``leased_here``) and, once
        recorded, handed to ``hand_off``, which sends the request at the due time — no claim,
        no transaction left between the due time and the request.

        With ``defer`` too, a first claim's start is not recorded here at all: the attempt is
        handed over with its ``start`` message (``deferred_start``, still leased here) and its
        call, and the call's ``Started`` is recorded with the outcome, in the transaction that
        consumes that message (``record_running`` records it first for an attempt still in
        flight a moment later). A due-now call then costs one transaction less. A message
        claimed before (its worker died or stopped) is started as above.
        """
        now = utcnow()
        calls, circuits = self._calls_and_circuits(messages)
        publish = []
        consume = []
        handed: list[Attempt] = []
        for message in messages:
            at = max(now, message.due_at) if hand_off and message.due_at else now
            call = calls.get(message.service_call_id)
            if message.id is not None:
                consume.append(message.id)
            if call is None or not call.is_due(message.attempt, at):
                log.info("stale_start_ignored", service_call_id=str(message.service_call_id))
                continue
            held_until = circuits.gate(
                call.tenant_id, call.request.host, call.id, message.attempt, at
            )
            if held_until is not None:
                call.hold(message.attempt, held_until)
                publish.append(start_message(call, trace_parent_of(message)))
                continue
            execute = execute_message(
                call.tenant_id,
                call.id,
                message.attempt,
                execution_id_for(call.id, message.attempt),
                call.request,
                at,
                self.execution_grace_seconds,
                trace_parent_of(message),
                call.correlation_id,
                call.origin,
                call.seal_response,
            )
            if hand_off and defer and message.claims == 1:
                consume.pop()  # its outcome's transaction consumes it
                deferred = deferred_start(execute, message, call.version)
                handed.append(Attempt(deferred, _started(deferred, at), call.request, call))
                continue
            call.start(message.attempt, at)
            if hand_off:
                execute = leased_here(execute, message, call.version)
                handed.append(Attempt(execute, _started(execute, at), call.request))
            publish.append(execute)
        changes = OutboxChanges(consume=consume, publish=publish)
        record(self, [*calls.values(), *circuits.touched], TransactionEffects(changes))
        if hand_off and handed:
            hand_off(handed)

    def record_running(self, attempts: Sequence[Attempt]) -> None:
        """Deferred starts still in flight: record each call as started (when its attempt
        began) with the attempt's ``execute`` message leased here (``running``), consuming its
        ``start`` message; the attempts carry on with their new messages. A call changed
        meanwhile (cancelled, paused) is left as it is: its attempt's outcome is recorded as
        stale. Raises on a write conflict (the caller drops the calls in hand)."""
        calls = self._calls_in_hand(attempts)
        started: list[tuple[Attempt, OutboxMessage]] = []
        for attempt in attempts:
            message = attempt.message
            call = calls.get(message.service_call_id)
            began = attempt.execution.started_at
            if call is not None and call.start(message.attempt, began) is not None:
                started.append((attempt, running(message)))
        changes = OutboxChanges(
            consume=[a.message.id for a, _ in started if a.message.id is not None],
            publish=[m for _, m in started],
        )
        record(self, [calls[a.message.service_call_id] for a, _ in started],
               TransactionEffects(changes))
        for attempt, execute in started:
            attempt.message, attempt.call = execute, None

    def _calls_in_hand(self, attempts: Sequence[Attempt]) -> dict[UUID, ServiceCall]:
        """The attempts' calls: those they carry, the others read (in one query)."""
        calls = {a.call.id: a.call for a in attempts if a.call is not None}
        wanted = [a.message.service_call_id for a in attempts if a.call is None]
        calls.update(load_many(self, wanted))
        return calls

    def begin_attempts(self, messages: Sequence[OutboxMessage]) -> list[Attempt]:
        """The attempts to make for these messages.

        As with Temporal's ActivityTaskStarted, an execution's Started event is recorded
        together with its outcome (one transaction per batch instead of two); meanwhile the
        leased ``execute`` message is the durable record of the attempt in flight. A message
        claimed again after its lease ended means a worker died mid-attempt: the same attempt
        is made again (same Idempotency-Key). After ``max_deliveries`` claims, the watchdog
        gives up and fails it as ``lost``; the policy retries.
        """
        now = utcnow()
        attempts: list[Attempt] = []
        finished: list[int] = []
        lost: list[tuple[Attempt, AttemptResult]] = []
        # Only a message delivered before can have a recorded execution (first deliveries,
        # nearly all of them, need no read).
        recorded = load_many(self, (execution_id_of(m) for m in messages if m.claims > 1))
        for message in messages:
            execution = recorded.get(execution_id_of(message))
            if execution is not None and execution.is_finished:
                finished.append(message.id or 0)  # a late duplicate: its outcome is recorded
                continue
            began = max(now, message.due_at) if message.due_at else now  # an early start: due
            attempt = Attempt(message, execution or _started(message, began), request_of(message))
            if message.claims > self.max_deliveries:
                lost.append((attempt, _lost(message)))
            else:
                attempts.append(attempt)
        if finished:
            record(self, [], _ending_attempts(finished))
        if lost:
            self.finish_attempts(lost)
        return attempts

    def withdraw_attempts(self, attempts: Sequence[Attempt]) -> None:
        """Attempts not to be made after all (their call was cancelled between the timer's
        early start and the due time): their messages go, nothing is recorded for them."""
        consume = [a.message.id for a in attempts if a.message.id]
        record(self, [], _ending_attempts(consume))

    def finish_attempts(self, results: Sequence[tuple[Attempt, AttemptResult]]) -> None:
        """Record each attempt's outcome, consuming its message, with what follows for its call
        (``record_outcomes``)."""
        unstarted = [a for a, _ in results if is_unstarted(a.message)]
        started = self._start_deferred(unstarted)
        now = utcnow()
        reported = []
        for attempt, result in results:
            ended = now if attempt.ended_at is None else min(now, attempt.ended_at)
            outcome = attempt.execution.finish(result, ended)
            if outcome is None:
                log.info("duplicate_outcome_ignored", execution_id=str(attempt.execution.id))
                continue
            reported.append((attempt.message, outcome))
        consume = [a.message.id for a, _ in results if a.message.id]
        executions = [a.execution for a, _ in results]
        self.record_outcomes(executions, reported, consume, now, started)

    def _start_deferred(self, attempts: Sequence[Attempt]) -> dict[UUID, ServiceCall]:
        """The calls of deferred starts, started (when each attempt began) unless changed
        meanwhile (cancelled, paused: their outcomes are then stale)."""
        calls = self._calls_in_hand(attempts)
        for attempt in attempts:
            call = calls.get(attempt.message.service_call_id)
            if call is not None:
                call.start(attempt.message.attempt, attempt.execution.started_at)
        return calls

    def reload_attempt(self, attempt: Attempt) -> Attempt:
        """The attempt with its execution as now recorded (after a write conflict)."""
        execution = self._find_execution(attempt.execution.id) or _started(
            attempt.message, attempt.execution.started_at
        )
        return Attempt(attempt.message, execution, attempt.request)  # its call read anew

    def _find_execution(self, execution_id: UUID) -> Execution | None:
        try:
            execution: Execution = self.repository.get(execution_id)
        except AggregateNotFoundError:
            return None
        return execution

    def record_outcomes(
        self,
        executions: Sequence[Execution],
        reported: Sequence[tuple[OutboxMessage, AttemptOutcome]],
        consume: Sequence[int],
        now: datetime,
        in_hand: Mapping[UUID, ServiceCall] = MappingProxyType({}),
    ) -> None:
        """Record attempts' outcomes (their executions' events) with what follows for each
        call, decided by the policy, in one transaction that consumes their messages (the
        calls ``in_hand`` are not read again: deferred starts)."""
        decision = self.decide(reported, now, in_hand, executions) if reported else Decision()
        effects = _ending_attempts(consume, decision.publish, decision.circuits)
        record(self, [*executions, *in_hand.values(), *decision.aggregates], effects)

    def executions_of(self, call: ServiceCall) -> list[Execution]:
        """The call's executions, one per attempt made so far, first attempt first."""
        ids = [execution_id_for(call.id, n) for n in range(1, call.attempt + 1)]
        found = load_many(self, ids)
        return [found[i] for i in ids if i in found]

    def decide(
        self,
        reported: Sequence[tuple[OutboxMessage, AttemptOutcome]],
        now: datetime,
        in_hand: Mapping[UUID, ServiceCall] = MappingProxyType({}),
        executions: Sequence[Execution] = (),
    ) -> Decision:
        """Orchestration policy: outcomes become Succeeded, a retry later (a ``start``
        message), or Failed; each message names the call, its tenant, host and trace. The
        calls ``in_hand`` are not read again; ``executions``: the attempts finished here (a
        workflow step's final response goes to its run)."""
        calls, circuits = self._calls_and_circuits(
            [message for message, _ in reported], in_hand
        )
        changed = []
        for message, outcome in reported:
            circuits.record(message.tenant_id, message.host, message.service_call_id, outcome, now)
            call = calls.get(message.service_call_id)
            if call and call.record_outcome(outcome, now, random.random()):
                changed.append(call)
            else:
                log.info("stale_outcome_ignored", service_call_id=str(message.service_call_id))
        traces = {m.service_call_id: trace_parent_of(m) for m, _ in reported}
        return Decision(
            aggregates=[*calls.values(), *circuits.touched],
            publish=follow_ups(changed, traces, {e.id: e for e in executions}),
            circuits=[NewCircuit(c.tenant_id, c.host, c.id) for c in circuits.registered],
        )

    def _calls_and_circuits(
        self,
        messages: Sequence[OutboxMessage],
        in_hand: Mapping[UUID, ServiceCall] = MappingProxyType({}),
    ) -> tuple[dict[UUID, ServiceCall], CircuitBoard]:
        """The messages' calls (but those ``in_hand``), and the circuit board for their hosts,
        in one query: the circuits the repository's cache holds are read through it (their
        newer events only); the others (most hosts have none) are read with the calls, so a
        host without a circuit costs no query of its own. A message its claim read (``read``)
        brings its call and tells whether its host has a circuit: a batch of those needs no
        query at all, unless a host has one."""
        pending = [m for m in messages if m.service_call_id not in in_hand]
        claimed = [m.read for m in pending if m.read is not None]
        # hosts the claim found no circuit for: none to read
        absent = {
            circuit_id_for(m.tenant_id, m.host)
            for m in pending
            if m.read is not None and m.read.circuit_id is None
        }
        wanted = {circuit_id_for(m.tenant_id, m.host) for m in messages} - absent
        uncached = [circuit_id for circuit_id in wanted if not self._cached(circuit_id)]
        unread = [m.service_call_id for m in pending if m.read is None]
        found = {
            **in_hand,
            **fold_events(self, (event for r in claimed for event in r.events)),
            **load_many(self, [*unread, *uncached]),
        }
        read: dict[UUID, Circuit | None] = {c: found.pop(c, None) for c in uncached}
        read.update(dict.fromkeys(absent))
        cache = self.repository.cache
        for circuit_id, circuit in read.items():
            if circuit is not None and cache is not None:  # kept as the repository would
                cache.put(circuit_id, copy.deepcopy(circuit))  # the board changes its own
        for message in messages:
            if message.service_call_id not in found:
                log.warning("unknown_call", service_call_id=str(message.service_call_id))

        def find(circuit_id: UUID) -> Circuit | None:
            return read[circuit_id] if circuit_id in read else self._find_circuit(circuit_id)

        return found, CircuitBoard(find, self.circuit_options)

    def _cached(self, aggregate_id: UUID) -> bool:
        cache = self.repository.cache
        if cache is None:
            return False
        try:
            cache.get(aggregate_id)
        except KeyError:
            return False
        return True

    def _find_circuit(self, circuit_id: UUID) -> Circuit | None:
        """The circuit as recorded now. Its history grows with every outcome for its host: the
        repository's cache (``AGGREGATE_CACHE_MAXSIZE``) keeps it and reads only newer events."""
        try:
            circuit: Circuit = self.repository.get(circuit_id)
        except AggregateNotFoundError:
            return None
        return circuit

    def _after_key_conflict(
        self, chunk: Sequence[tuple[int, SubmitServiceCall]]
    ) -> dict[int, tuple[ServiceCall, bool]]:
        """A concurrent submit recorded one of the keys first: answer item by item."""
        if len(chunk) > 1:
            return {i: self.submit(command) for i, command in chunk}
        index, command = chunk[0]
        original = self._originals([command]).get(0)
        if original is None:
            raise IntegrityError(f"submit of {command.idempotency_key!r} conflicted")
        return {index: (original, False)}

    def _originals(self, commands: Sequence[SubmitServiceCall]) -> dict[int, ServiceCall]:
        """The calls first submitted with these commands' Idempotency-Keys, by position."""
        keyed = [(i, c) for i, c in enumerate(commands) if c.idempotency_key is not None]
        if not keyed or self.idempotency_keys is None:
            return {}
        originals: dict[int, ServiceCall] = {}
        for tenant_id in {c.tenant_id for _, c in keyed}:
            asked = [(i, c) for i, c in keyed if c.tenant_id == tenant_id]
            keys = [str(c.idempotency_key) for _, c in asked]
            found = self.idempotency_keys.find(tenant_id, keys)
            for i, command in asked:
                record = found.get(str(command.idempotency_key))
                if record is None:
                    continue
                if record.request_hash != command.request_hash:
                    raise IdempotencyKeyReusedError(record.key, record.service_call_id)
                originals[i] = self.get_call(tenant_id, record.service_call_id)
        return originals


def follow_ups(
    calls: Iterable[ServiceCall],
    traces: Mapping[UUID, str | None],
    executions: Mapping[UUID, Execution] = MappingProxyType({}),
) -> list[OutboxMessage]:
    """What changed calls cause: a timer message for each call now scheduled (carrying on its
    trace context), and for each call a schedule fired or a workflow step made that is now
    over, its outcome for that producer (``executions``, by id: the attempts finished in the
    same transaction, whose responses a workflow step's outcome carries)."""
    messages = []
    for call in calls:
        if call.status == Status.SCHEDULED:
            messages.append(start_message(call, traces.get(call.id)))
        elif (
            outcome := producer_outcome_message(
                call, executions.get(call.execution_id) if call.execution_id else None
            )
        ) is not None:
            messages.append(outcome)
    return messages


def _ending_attempts(
    consume: Sequence[int],
    publish: Sequence[OutboxMessage] = (),
    circuits: Sequence[NewCircuit] = (),
) -> TransactionEffects:
    """The effects of a transaction that ends attempts in flight (their ``execute`` messages
    go: timers held back by a concurrency limit look again)."""
    return TransactionEffects(OutboxChanges(consume, publish, frees_slots=True), circuits=circuits)


def _new_call(command: SubmitServiceCall, box: SecretBox) -> ServiceCall:
    """The new call, its secret header values sealed: only ciphertext is ever recorded (in its
    events and in the messages that carry its request); the worker opens them to send."""
    return ServiceCall.submit(
        id=new_service_call_id(),
        tenant_id=command.tenant_id,
        name=command.name,
        request=command.request.sealed(box.seal),
        due_at=command.due_at,
        tags=command.tags,
        correlation_id=command.correlation_id,
        idempotency_key=command.idempotency_key,
        retry_policy=command.retry_policy,
        origin=command.origin,
    )


def _lost(message: OutboxMessage) -> AttemptResult:
    return AttemptResult(
        duration_ms=0.0,
        error_kind=ErrorKind.LOST,
        message=f"no outcome after {message.claims - 1} deliveries (workers died or hung)",
    )


def _started(message: OutboxMessage, now: datetime) -> Execution:
    return Execution.begin(
        id=execution_id_of(message),
        tenant_id=message.tenant_id,
        service_call_id=message.service_call_id,
        attempt=message.attempt,
        request=request_of(message),
        now=now,
    )
