"""The tracing port: a span per HTTP attempt, its W3C trace context sent to the target.

Tracing is off by default: the worker then holds ``NO_TRACING``, whose spans are one shared
object that does nothing (no OpenTelemetry at all on the hot path). Infrastructure implements
the port with OpenTelemetry (``infrastructure/tracing.py``) when ``DUECALL_TRACING`` is set.

Where an attempt's span continues from: the API request that submitted the call (or asked for
a manual retry). Its W3C ``traceparent`` rides on the outbox messages of that call (start →
execute → outcome → the next start), never in the call's events: it is telemetry of the
moment, not part of what the call is, and it is absent when tracing is off.
"""

from collections.abc import Mapping
from typing import Protocol

from application.service_calls import Attempt
from domain.outcome import AttemptResult


class AttemptSpan(Protocol):
    @property
    def headers(self) -> Mapping[str, str]:
        """The trace context to send with the attempt (``traceparent``); empty when off."""

    def end(self, result: AttemptResult | None) -> None:
        """The attempt ended with ``result`` (None: abandoned, e.g. handed back at a stop)."""


class Tracer(Protocol):
    def current_trace_parent(self) -> str | None:
        """The ``traceparent`` of the span now current (an API request), for the attempts it
        causes to continue; None when off or outside a span."""

    def request_tenant(self, tenant_id: str) -> None:
        """Tag the span now current (an API request's) with the tenant it acts for."""

    def attempt(self, attempt: Attempt) -> AttemptSpan:
        """Start the span of one HTTP attempt."""

    def flush(self) -> None:
        """Export the spans not exported yet (a process stopping)."""


class _NoSpan:
    headers: Mapping[str, str] = {}

    def end(self, result: AttemptResult | None) -> None:
        pass


class NoTracer:
    """Tracing off: nothing is recorded, nothing is sent."""

    _span = _NoSpan()

    def current_trace_parent(self) -> str | None:
        return None

    def request_tenant(self, tenant_id: str) -> None:
        pass

    def attempt(self, attempt: Attempt) -> AttemptSpan:
        return self._span

    def flush(self) -> None:
        pass


NO_TRACING: Tracer = NoTracer()
