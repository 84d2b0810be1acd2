"""Orchestration: the ServiceCall application (the single writer of service-call events)."""

from collections.abc import Sequence
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError, Application

from application.clock import utcnow
from application.commands import SubmitServiceCall
from application.messages import execute_message, outcome_of, start_message
from application.outbox import OutboxChanges, OutboxMessage
from application.recording import save_with_outbox
from domain.errors import ServiceCallNotFoundError
from domain.ids import new_service_call_id
from domain.service_call import ServiceCall

log = structlog.get_logger(__name__)


class ServiceCalls(Application[UUID]):
    name = "duecall"
    execution_grace_seconds = 30.0

    def submit(self, command: SubmitServiceCall) -> ServiceCall:
        call = ServiceCall.submit(
            id=new_service_call_id(),
            tenant_id=command.tenant_id,
            name=command.name,
            request=command.request,
            due_at=command.due_at,
            tags=command.tags,
            correlation_id=command.correlation_id,
            idempotency_key=command.idempotency_key,
        )
        timer = start_message(call.tenant_id, call.id, call.attempt, call.due_at)
        save_with_outbox(self, [call], OutboxChanges(publish=[timer]))
        return call

    def get_call(self, tenant_id: str, call_id: UUID) -> ServiceCall:
        try:
            call: ServiceCall = self.repository.get(call_id)
        except AggregateNotFoundError:
            raise ServiceCallNotFoundError(call_id) from None
        if call.tenant_id != tenant_id:
            raise ServiceCallNotFoundError(call_id)
        return call

    def start_due(self, messages: Sequence[OutboxMessage]) -> None:
        """Timer: start the due attempts, and tell the execution module to make them."""
        now = utcnow()
        calls = self._load(messages)
        publish = []
        for message in messages:
            call = calls.get(message.service_call_id)
            execution_id = call.start(message.attempt, now) if call else None
            if call is None or execution_id is None:
                log.info("stale_start_ignored", service_call_id=str(message.service_call_id))
                continue
            publish.append(
                execute_message(
                    call.tenant_id,
                    call.id,
                    call.attempt,
                    execution_id,
                    call.request,
                    now,
                    self.execution_grace_seconds,
                )
            )
        changes = OutboxChanges(consume=[m.id for m in messages if m.id], publish=publish)
        save_with_outbox(self, calls.values(), changes)

    def record_outcomes(self, messages: Sequence[OutboxMessage]) -> None:
        """Orchestration policy: turn execution outcomes into the calls' outcomes."""
        now = utcnow()
        calls = self._load(messages)
        for message in messages:
            call = calls.get(message.service_call_id)
            if call is None or not call.record_outcome(outcome_of(message), now):
                log.info("stale_outcome_ignored", service_call_id=str(message.service_call_id))
        changes = OutboxChanges(consume=[m.id for m in messages if m.id])
        save_with_outbox(self, calls.values(), changes)

    def _load(self, messages: Sequence[OutboxMessage]) -> dict[UUID, ServiceCall]:
        calls: dict[UUID, ServiceCall] = {}
        for message in messages:
            if message.service_call_id in calls:
                continue
            try:
                calls[message.service_call_id] = self.repository.get(message.service_call_id)
            except AggregateNotFoundError:
                log.warning(
                    "message_for_unknown_call", service_call_id=str(message.service_call_id)
                )
        return calls
