"""A stored workflow definition: a tenant's definition by name, with immutable versions.

The aggregate's id is derived from the tenant and the name (uuid5), so a name is one
aggregate per tenant, and two first stores of one name meet as a write conflict. Version n of
the definition is the aggregate's version n: ``Registered`` records version 1, each
``VersionAdded`` the next. The state holds the newest document only; an older version is the
aggregate as it was at that version (``repository.get(id, version=n)``).

A document is stored checked (``parse_definition``) under the name it carries: a document
without a ``name`` takes the one it is stored under, a different one is refused. Its literal
secret header values are recorded sealed (the application seals them: only ciphertext is
recorded). Storing a document equal to the newest version (its sealed values compared
opened) records nothing: the caller gets that version (``same_as_newest``).
"""

import json
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event
from eventsourcing.domain import Snapshot as AggregateSnapshot

from domain.errors import InvalidRequestError
from domain.workflow_definition import DEFAULT_MAX_STEPS, check_definition_name, parse_definition
from domain.workflow_run import json_copy
from domain.workflow_secret_values import redacted
from domain.workflow_secrets import opened_definition
from domain.workflow_tokens import shown

MAX_VERSIONS = 1000  # per definition: each is kept, and a name's history is bounded
_NAMESPACE = UUID("3b8f5c1e-9d2a-4f6b-8e7c-5a1d0f2c4e69")


def stored_definition_id(tenant_id: str, name: str) -> UUID:
    return uuid5(_NAMESPACE, f"{tenant_id}\x00{name}")


def document_named(
    values: object, name: str, max_steps: int = DEFAULT_MAX_STEPS
) -> dict[str, Any]:
    """The document as stored under ``name``: a JSON copy, its ``name`` filled in when
    missing, checked whole (the first problem raised, naming the field)."""
    check_definition_name(name)
    if not isinstance(values, Mapping):
        raise InvalidRequestError("definition", "must be an object")
    document = json_copy(values, "definition")
    given = document.pop("name", name)
    if given != name:
        raise InvalidRequestError(
            "name", f"is {shown(given)}, not the name it is stored under ({name!r})"
        )
    document = {"name": name, **document}
    parse_definition(document, max_steps)
    return document


class StoredWorkflowDefinition(Aggregate):
    TOPIC = "duecall:StoredWorkflowDefinition"

    class Event(Aggregate.Event):
        TOPIC = "duecall:StoredWorkflowDefinition.Event"

    class Registered(Event, Aggregate.Created):
        """Version 1 of a name (the definition as checked, secret values sealed)."""

        TOPIC = "duecall:StoredWorkflowDefinition.Registered"
        tenant_id: str
        name: str
        definition: dict[str, Any]

    class VersionAdded(Event):
        """The next version (the aggregate's version is the definition's)."""

        TOPIC = "duecall:StoredWorkflowDefinition.VersionAdded"
        definition: dict[str, Any]

    class Snapshot(AggregateSnapshot):
        """The newest version as it stands, so a long history loads from the snapshot on."""

        TOPIC = "duecall:StoredWorkflowDefinition.Snapshot"

    @event(Registered)
    def __init__(self, id: UUID, tenant_id: str, name: str, definition: dict[str, Any]) -> None:
        self.tenant_id = tenant_id
        self.name = name
        self.definition = definition

    @classmethod
    def register(
        cls, tenant_id: str, name: str, definition: dict[str, Any]
    ) -> "StoredWorkflowDefinition":
        """Version 1 of ``name``: ``definition`` as ``document_named`` gave it, sealed."""
        return cls(
            id=stored_definition_id(tenant_id, name),
            tenant_id=tenant_id,
            name=name,
            definition=definition,
        )

    def add_version(self, definition: dict[str, Any]) -> int:
        """The next version, recorded; its number."""
        if self.version >= MAX_VERSIONS:
            raise InvalidRequestError(
                "definition", f"{self.name!r} has {MAX_VERSIONS} versions, the most it may have"
            )
        self._version_added(definition=definition)
        return self.version

    @event(VersionAdded)
    def _version_added(self, definition: dict[str, Any]) -> None:
        self.definition = definition

    def same_as_newest(
        self, document: Mapping[str, Any], open_value: Callable[[str], str]
    ) -> bool:
        """Is ``document`` (as given) the newest version? Sealed values are compared opened;
        one that does not open (a key changed) makes it a new version."""
        try:
            opened = opened_definition(self.definition, open_value)
        except Exception:  # any failure to open (another key, a damaged value): not the same
            return False
        return _canonical(opened) == _canonical(document)

    def log_context(self) -> dict[str, str]:
        return {"workflow_definition": self.name, "tenant_id": self.tenant_id}

    def describe(self) -> dict[str, Any]:
        """This version as plain values, for the API and the CLI."""
        steps = self.definition.get("steps", [])
        return {
            "name": self.name,
            "version": self.version,
            "steps": len(steps) if isinstance(steps, list) else 0,
            "definition": redacted(self.definition),  # sealed secret values: [REDACTED]
            "created_at": self.modified_on,  # this version's
        }


def _canonical(values: Mapping[str, Any]) -> str:
    """Equal documents give equal text (key order aside)."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"), allow_nan=False)


def check_version(version: object, field: str = "definition_version") -> int:
    """A version number as a request gives it: 1 to ``MAX_VERSIONS``."""
    if isinstance(version, bool) or not isinstance(version, int) or not (
        1 <= version <= MAX_VERSIONS
    ):
        raise InvalidRequestError(field, f"must be a version number from 1 to {MAX_VERSIONS}")
    return version
