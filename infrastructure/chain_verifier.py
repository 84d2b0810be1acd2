"""Verifying the hash chains in Python, independently of the trigger that recorded them, and
exporting their heads (anchors) for an auditor to keep elsewhere.

Rows are read in (aggregate, version) order through a server-side cursor, so verifying a
large store holds one aggregate's chain at a time. For each aggregate the walk stops at the
first link that does not hold: an event whose bytes (or hash) were changed, a version gap (a
deleted event), an event without a hash (inserted with the trigger off), a hash without its
event (a deleted one), or a chain that disagrees with an anchor (rewritten or truncated).
"""

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg.rows import dict_row

from domain.ids import execution_id_for
from infrastructure.event_hashes import HASHES_TABLE, chain_hash
from infrastructure.schema import EVENTS_TABLE

_ROWS = (
    "SELECT originator_id, originator_version, e.topic, e.state, h.hash, "
    "coalesce(e.notification_id, h.notification_id) AS notification_id, "
    f"e.originator_id IS NOT NULL AS recorded FROM {EVENTS_TABLE} e "
    f"FULL JOIN {HASHES_TABLE} h USING (originator_id, originator_version) "
)
_HEADS = (
    "SELECT DISTINCT ON (originator_id) originator_id, originator_version, hash "
    f"FROM {HASHES_TABLE}"
)

_RECORDED = (  # events, or their hashes if the events were deleted
    f"SELECT originator_id FROM {EVENTS_TABLE} WHERE originator_id = ANY(%s) UNION "
    f"SELECT originator_id FROM {HASHES_TABLE} WHERE originator_id = ANY(%s)"
)


@dataclass(frozen=True)
class ChainBreak:
    originator_id: UUID
    version: int
    position: int | None  # the event's place in the log (None when the event is gone)
    problem: str


@dataclass
class Verification:
    aggregates: int = 0
    events: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def first(self) -> ChainBreak | None:
        """The earliest break in log order."""
        return min(
            self.breaks, key=lambda b: (b.position is None, b.position or 0), default=None
        )


Anchors = dict[UUID, tuple[int, bytes]]  # aggregate → (version, hash) an auditor kept


def verify(
    conn: Connection[Any],
    *,
    tenant: str | None = None,
    originator_ids: Iterable[UUID] | None = None,
    anchors: Anchors | None = None,
) -> Verification:
    where, params = _filter(tenant, originator_ids)
    result = Verification()
    with conn.transaction(), conn.cursor("duecall_verify", row_factory=dict_row) as curs:
        curs.execute(f"{_ROWS} {where} ORDER BY 1, 2", params)
        for originator_id, rows in groupby(curs, key=lambda r: r["originator_id"]):
            result.aggregates += 1
            anchor = (anchors or {}).get(originator_id)
            found = _first_break(originator_id, rows, anchor, result)
            if found is not None:
                result.breaks.append(found)
    return result


def _first_break(
    originator_id: UUID, rows: Iterator[dict[str, Any]], anchor: tuple[int, bytes] | None,
    result: Verification,
) -> ChainBreak | None:
    prev: bytes | None = None
    version = 0
    for row in rows:
        result.events += 1
        version += 1
        position = row["notification_id"]
        if row["originator_version"] != version:
            return ChainBreak(originator_id, version, position, "missing: a version gap")
        if not row["recorded"]:
            return ChainBreak(originator_id, version, position, "missing: hash without event")
        prev = chain_hash(prev, originator_id, version, row["topic"], _bytes(row["state"]))
        if row["hash"] is None:
            return ChainBreak(originator_id, version, position, "no hash was recorded for it")
        if bytes(row["hash"]) != prev:
            return ChainBreak(originator_id, version, position, "hash mismatch: event altered")
        if anchor and anchor[0] == version and anchor[1] != prev:
            return ChainBreak(originator_id, version, position, "differs from its anchor")
    if anchor and anchor[0] > version:
        return ChainBreak(originator_id, version, None, f"truncated: anchored at v{anchor[0]}")
    return None


def chain_heads(conn: Connection[Any], tenant: str | None = None) -> dict[str, Any]:
    """Each aggregate's latest version and hash, and one digest over them all."""
    where, params = _filter(tenant, None)
    rows = conn.execute(
        f"{_HEADS} {where} ORDER BY originator_id, originator_version DESC", params
    ).fetchall()
    heads = {str(r[0]): {"version": int(r[1]), "hash": bytes(r[2]).hex()} for r in rows}
    digest = hashlib.sha256()
    for originator_id, head in heads.items():
        digest.update(f"{originator_id}:{head['version']}:{head['hash']}\n".encode())
    return {"tenant": tenant, "aggregates": len(heads), "digest": digest.hexdigest(),
            "heads": heads}


def anchors_from(document: dict[str, Any]) -> Anchors:
    return {UUID(k): (int(v["version"]), bytes.fromhex(v["hash"]))
            for k, v in document["heads"].items()}


def call_family(conn: Connection[Any], call_id: UUID) -> list[UUID]:
    """The call and the executions recorded for it (attempts 1..n, stopping at the first gap)."""
    ids = [call_id]
    while True:
        batch = [execution_id_for(call_id, len(ids) + n) for n in range(64)]
        found = {r[0] for r in conn.execute(_RECORDED, (batch, batch)).fetchall()}
        for candidate in batch:
            if candidate not in found:
                return ids
            ids.append(candidate)


def _filter(tenant: str | None, originator_ids: Iterable[UUID] | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if tenant is not None:
        clauses.append(f"originator_id IN (SELECT originator_id FROM {HASHES_TABLE} "
                       "WHERE tenant_id = %s)")
        params.append(tenant)
    if originator_ids is not None:
        clauses.append("originator_id = ANY(%s)")
        params.append(list(originator_ids))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)
