"""Stored workflow definitions: a tenant's definitions by name, with immutable versions (the
StoredWorkflowDefinition aggregate), and the dry run of a definition.

``put`` checks a definition whole and records it as the name's next version, its literal
secret header values sealed; a definition equal to the newest version records nothing and
answers that version (so a client may PUT the same file again and again). Two first stores of
one name meet as a write conflict (the id is derived from the tenant and the name): the
second is tried again and finds the first. Reads load the aggregate (an older version: as of
that version); the list of a tenant's definitions is the `workflow_definitions` read model's
(``projections/workflow_definitions.py``).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from application.conflicts import retry_on_conflict
from application.outbox import record
from application.service_calls import ServiceCalls
from domain.errors import DomainError
from domain.request import DEFAULT_MAX_BODY_BYTES
from domain.workflow_definition import DEFAULT_MAX_STEPS, check_definition_name
from domain.workflow_secrets import sealed_definition
from domain.workflow_stored_definition import (
    StoredWorkflowDefinition,
    check_version,
    document_named,
    stored_definition_id,
)
from domain.workflow_validation import DryRun, dry_run


class WorkflowDefinitionNotFoundError(DomainError):
    def __init__(self, name: str, version: int | None = None) -> None:
        which = "" if version is None else f" version {version}"
        super().__init__(f"workflow definition {name!r}{which} not found")
        self.name = name
        self.version = version


@dataclass(frozen=True)
class Stored:
    """What ``put`` left: the newest version, whether this put added it, and the log
    position of its event (None: nothing recorded), for read-your-writes."""

    definition: StoredWorkflowDefinition
    added: bool
    position: int | None = None


class WorkflowDefinitions:
    def __init__(
        self,
        calls: ServiceCalls,
        *,
        max_steps: int = DEFAULT_MAX_STEPS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._calls = calls
        self._max_steps = max_steps
        self._max_body_bytes = max_body_bytes

    def put(self, tenant_id: str, name: str, definition: Mapping[str, Any]) -> Stored:
        """Store ``definition`` as ``name``'s next version, unless it is the newest."""
        document = document_named(definition, name, self._max_steps)
        box = self._calls.secret_box

        def once() -> Stored:
            stored = self._find(tenant_id, name)
            if stored is not None and stored.same_as_newest(document, box.open):
                return Stored(stored, added=False)
            sealed = sealed_definition(document, box.seal)
            if stored is None:
                stored = StoredWorkflowDefinition.register(tenant_id, name, sealed)
            else:
                stored.add_version(sealed)
            return Stored(stored, added=True, position=record(self._calls, [stored]))

        return retry_on_conflict(once, f"workflow definition {name!r}")

    def get(
        self, tenant_id: str, name: str, version: int | None = None
    ) -> StoredWorkflowDefinition:
        """The newest version of ``name``, or ``version``; another tenant's is not found."""
        check_definition_name(name)
        if version is not None:
            check_version(version, "version")
        stored = self._find(tenant_id, name, version)
        if stored is None:
            raise WorkflowDefinitionNotFoundError(name)
        if version is not None and stored.version != version:  # newer than the newest
            raise WorkflowDefinitionNotFoundError(name, version)
        return stored

    def validate(self, definition: object, input_values: object = None) -> DryRun:
        """The dry run of ``definition`` (with ``input_values``): nothing is recorded."""
        return dry_run(
            definition,
            input_values,
            max_steps=self._max_steps,
            max_body_bytes=self._max_body_bytes,
        )

    def _find(
        self, tenant_id: str, name: str, version: int | None = None
    ) -> StoredWorkflowDefinition | None:
        try:
            stored: StoredWorkflowDefinition = self._calls.repository.get(
                stored_definition_id(tenant_id, name), version=version
            )
        except AggregateNotFoundError:
            return None
        if not isinstance(stored, StoredWorkflowDefinition) or stored.tenant_id != tenant_id:
            return None
        return stored
