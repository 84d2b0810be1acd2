"""Tamper evidence: every recorded event's hash, chained to the previous event of its aggregate.

    hash(v) = sha256( hash(v-1) | originator_id (16 bytes) | version (8 bytes, big-endian)
                      | topic (UTF-8) | 0x00 | state )          hash(0) = 32 zero bytes

A Postgres ``AFTER INSERT`` trigger on ``duecall_events`` computes it in the very transaction
that records the event (whatever process or code path inserts it) into
``duecall_event_hashes``, with the event's tenant (copied along the chain from the first event,
which names it), its notification position and the database's clock (``recorded_at``), so a
tenant's stream can be read in order from an index. ``chain_hash`` is the same function in
Python: ``duecall audit verify`` recomputes every chain from the stored rows independently.

Ordering: the events table is created by eventsourcing when the applications are constructed,
after the core migrations ran; these migrations are their own component, applied by
``migrate_event_store`` once the applications exist (``Container.build``). Events recorded
before the trigger existed are chained by the migration itself (under the trigger's lock).
"""

import hashlib
from uuid import UUID

import psycopg

from infrastructure.migrations import Migration, apply_migrations

EVENTS_TABLE = "duecall_events"
HASHES_TABLE = "duecall_event_hashes"
GENESIS = bytes(32)

_CHAIN = f"""
CREATE TABLE IF NOT EXISTS {HASHES_TABLE} (
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    notification_id bigint NOT NULL,
    tenant_id text,
    recorded_at timestamptz NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (originator_id, originator_version)
);
CREATE INDEX IF NOT EXISTS {HASHES_TABLE}_tenant_position
    ON {HASHES_TABLE} (tenant_id, notification_id);
CREATE INDEX IF NOT EXISTS {HASHES_TABLE}_tenant_time ON {HASHES_TABLE} (tenant_id, recorded_at);

CREATE OR REPLACE FUNCTION duecall_event_hash(
    prev bytea, id uuid, version bigint, topic text, state bytea
) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(coalesce(prev, decode(repeat('00', 32), 'hex')) || uuid_send(id)
        || int8send(version) || coalesce(convert_to(topic, 'UTF8'), '') || '\\x00'::bytea
        || coalesce(state, ''))
$$;

CREATE OR REPLACE FUNCTION duecall_chain_event(e {EVENTS_TABLE}, at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    prev {HASHES_TABLE}%ROWTYPE;
    tenant text;
BEGIN
    SELECT * INTO prev FROM {HASHES_TABLE}
        WHERE originator_id = e.originator_id AND originator_version = e.originator_version - 1;
    tenant := prev.tenant_id;
    IF tenant IS NULL AND substring(e.state FROM 1 FOR 1) = '\\x7b'::bytea THEN
        tenant := convert_from(e.state, 'UTF8')::jsonb ->> 'tenant_id';  -- first event
    END IF;
    INSERT INTO {HASHES_TABLE} VALUES (
        e.originator_id, e.originator_version, e.notification_id, tenant, at,
        duecall_event_hash(prev.hash, e.originator_id, e.originator_version, e.topic, e.state)
    ) ON CONFLICT DO NOTHING;  -- a re-inserted row keeps its first hash: verify flags it
END
$$;

CREATE OR REPLACE FUNCTION duecall_events_chain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM duecall_chain_event(NEW, clock_timestamp());
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION duecall_events_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE {HASHES_TABLE};
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS duecall_events_chain ON {EVENTS_TABLE};
CREATE TRIGGER duecall_events_chain AFTER INSERT ON {EVENTS_TABLE}
    FOR EACH ROW EXECUTE FUNCTION duecall_events_chain();
DROP TRIGGER IF EXISTS duecall_events_truncated ON {EVENTS_TABLE};
CREATE TRIGGER duecall_events_truncated AFTER TRUNCATE ON {EVENTS_TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION duecall_events_truncated();

DO $$
DECLARE
    e {EVENTS_TABLE};
BEGIN
    FOR e IN SELECT * FROM {EVENTS_TABLE} ORDER BY originator_id, originator_version LOOP
        PERFORM duecall_chain_event(e, coalesce(CASE
            WHEN substring(e.state FROM 1 FOR 1) = '\\x7b'::bytea  -- the event's own time
            THEN (convert_from(e.state, 'UTF8')::jsonb -> 'timestamp' ->> '_data_')::timestamptz
        END, now()));
    END LOOP;
END
$$;
"""

EVENT_STORE_MIGRATIONS = [Migration(1, "hash-chain every recorded event", _CHAIN)]


def chain_hash(prev: bytes | None, originator_id: UUID, version: int, topic: str | None,
               state: bytes | None) -> bytes:
    """The hash the trigger records for an event (``prev`` is None for the first one)."""
    digest = hashlib.sha256(prev or GENESIS)
    digest.update(originator_id.bytes)
    digest.update(version.to_bytes(8, "big", signed=True))
    digest.update((topic or "").encode("utf-8") + b"\x00")
    digest.update(state or b"")
    return digest.digest()


def migrate_event_store(url: str) -> None:
    """Apply the migrations on the events table (after the applications created it)."""
    with psycopg.connect(url, autocommit=True) as conn:
        apply_migrations(conn, "event_store", EVENT_STORE_MIGRATIONS)
