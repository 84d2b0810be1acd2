"""Tamper evidence: every recorded event's hash, chained to the previous event of its aggregate.

    hash(v) = sha256( hash(v-1) | originator_id (16 bytes) | version (8 bytes, big-endian)
                      | topic (UTF-8) | 0x00 | state )          hash(0) = 32 zero bytes

A statement-level Postgres ``AFTER INSERT`` trigger on ``duecall_events`` (the inserted rows
as a transition table, chained set-based) computes it in the very transaction that records
the events (whatever process or code path inserts them) into
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
from infrastructure.schema import EVENTS_TABLE

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
CREATE INDEX IF NOT EXISTS {HASHES_TABLE}_tenant_time
    ON {HASHES_TABLE} (tenant_id, recorded_at, notification_id);

CREATE OR REPLACE FUNCTION duecall_event_hash(
    prev bytea, id uuid, version bigint, topic text, state bytea
) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(coalesce(prev, decode(repeat('00', 32), 'hex')) || uuid_send(id)
        || int8send(version) || coalesce(convert_to(topic, 'UTF8'), '') || '\\x00'::bytea
        || coalesce(state, ''))
$$;

CREATE OR REPLACE FUNCTION duecall_event_tenant(state bytea) RETURNS text
LANGUAGE sql IMMUTABLE AS $$  -- named by an aggregate's first event only
    SELECT CASE WHEN substring(state FROM 1 FOR 1) = '\\x7b'::bytea
        THEN convert_from(state, 'UTF8')::json ->> 'tenant_id' END
$$;

CREATE OR REPLACE FUNCTION duecall_event_time(state bytea) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$  -- the event's own time (for events chained after the fact)
    SELECT CASE WHEN substring(state FROM 1 FOR 1) = '\\x7b'::bytea
        THEN (convert_from(state, 'UTF8')::json -> 'timestamp' ->> '_data_')::timestamptz END
$$;

-- Chain a set of new events: each aggregate's first new event links to its last recorded
-- hash, the next ones to each other (a recursive walk along the versions, set-based).
CREATE OR REPLACE FUNCTION duecall_chain(events {EVENTS_TABLE}[], at timestamptz)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO {HASHES_TABLE}
        (originator_id, originator_version, notification_id, tenant_id, recorded_at, hash)
    WITH RECURSIVE new AS (SELECT * FROM unnest(events)),
    chain AS (
        SELECT n.originator_id, n.originator_version, n.notification_id,
            coalesce(p.tenant_id, duecall_event_tenant(n.state)) AS tenant_id,
            coalesce(at, duecall_event_time(n.state), now()) AS recorded_at,
            duecall_event_hash(p.hash, n.originator_id, n.originator_version, n.topic, n.state)
                AS hash
        FROM new n LEFT JOIN {HASHES_TABLE} p ON p.originator_id = n.originator_id
            AND p.originator_version = n.originator_version - 1
        WHERE NOT EXISTS (SELECT FROM new m WHERE m.originator_id = n.originator_id
            AND m.originator_version = n.originator_version - 1)
        UNION ALL
        SELECT n.originator_id, n.originator_version, n.notification_id,
            coalesce(c.tenant_id, duecall_event_tenant(n.state)),
            coalesce(at, duecall_event_time(n.state), now()),
            duecall_event_hash(c.hash, n.originator_id, n.originator_version, n.topic, n.state)
        FROM chain c JOIN new n ON n.originator_id = c.originator_id
            AND n.originator_version = c.originator_version + 1
    )
    SELECT * FROM chain
    ON CONFLICT DO NOTHING  -- a re-inserted row keeps its first hash: verify flags it
$$;

CREATE OR REPLACE FUNCTION duecall_events_chain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM duecall_chain(
        ARRAY(SELECT ROW(n.*)::{EVENTS_TABLE} FROM new_events n), clock_timestamp());
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
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION duecall_events_chain();
DROP TRIGGER IF EXISTS duecall_events_truncated ON {EVENTS_TABLE};
CREATE TRIGGER duecall_events_truncated AFTER TRUNCATE ON {EVENTS_TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION duecall_events_truncated();

DO $$  -- chain the events recorded before the trigger existed, 1,000 aggregates at a time
DECLARE
    ids uuid[];
    last uuid := '00000000-0000-0000-0000-000000000000';
BEGIN
    LOOP
        SELECT array_agg(originator_id ORDER BY originator_id) INTO ids FROM (
            SELECT DISTINCT originator_id FROM {EVENTS_TABLE} WHERE originator_id > last
            ORDER BY 1 LIMIT 1000) AS batch;
        EXIT WHEN ids IS NULL;
        PERFORM duecall_chain(
            ARRAY(SELECT e FROM {EVENTS_TABLE} e WHERE originator_id = ANY(ids)), NULL);
        last := ids[array_length(ids, 1)];
    END LOOP;
END
$$;
"""

# Declared IMMUTABLE, the helpers could not be inlined into the chaining statement (their
# bodies call convert_to/convert_from and a timestamptz cast, which are only STABLE), so
# Postgres ran each as a query of its own for every event; STABLE lets the planner inline them.
_INLINABLE = """
ALTER FUNCTION duecall_event_hash(bytea, uuid, bigint, text, bytea) STABLE;
ALTER FUNCTION duecall_event_tenant(bytea) STABLE;
ALTER FUNCTION duecall_event_time(bytea) STABLE;
"""

# eventsourcing's writers take the events table's lock in EXCLUSIVE mode, which conflicts with
# the SHARE UPDATE EXCLUSIVE lock of (auto)ANALYZE: every writer (submits, the timer, outcomes)
# waits while the table is analyzed, and the table's own settings (eventsourcing's) analyze it
# after every 1 % of growth, and a concurrent LOCK TABLE waits as long as ANALYZE takes (the
# timer's lateness shows it; figures in docs/performance.md). The queries on this table use its
# keys, never the state column's statistics: state is left out, the sample is small, and it
# runs after every 10 % of growth.
_QUICK_ANALYZE = f"""
ALTER TABLE {EVENTS_TABLE}
    ALTER COLUMN state SET STATISTICS 0,
    ALTER COLUMN topic SET STATISTICS 10,
    ALTER COLUMN originator_id SET STATISTICS 10,
    ALTER COLUMN originator_version SET STATISTICS 10,
    ALTER COLUMN notification_id SET STATISTICS 10;
ALTER TABLE {EVENTS_TABLE} SET (autovacuum_analyze_scale_factor = 0.1);
"""

# The new events (the trigger's transition table ``new_events``) with their hashes, chained
# from each aggregate's last recorded hash. The previous hash is looked up per new event by
# primary key (a LATERAL subquery with LIMIT 1, which the planner keeps as such): as a plain
# join, the planner, which has no statistics on a transition table, could hash the whole
# hashes table instead, a sequential scan per insert, longer with every event recorded.
# Migration 5 installs the trigger with it on databases migrated before.
CHAINED_NEW_EVENTS = f"""
WITH RECURSIVE chain AS (
    SELECT n.originator_id, n.originator_version, n.notification_id,
        coalesce(p.tenant_id, duecall_event_tenant(n.state)) AS tenant_id,
        duecall_event_hash(p.hash, n.originator_id, n.originator_version, n.topic, n.state)
            AS hash
    FROM new_events n LEFT JOIN LATERAL (
        SELECT h.tenant_id, h.hash FROM {HASHES_TABLE} h
        WHERE h.originator_id = n.originator_id
            AND h.originator_version = n.originator_version - 1
        LIMIT 1
    ) p ON true
    WHERE NOT EXISTS (SELECT FROM new_events m WHERE m.originator_id = n.originator_id
        AND m.originator_version = n.originator_version - 1)
    UNION ALL
    SELECT n.originator_id, n.originator_version, n.notification_id,
        coalesce(c.tenant_id, duecall_event_tenant(n.state)),
        duecall_event_hash(c.hash, n.originator_id, n.originator_version, n.topic, n.state)
    FROM chain c JOIN new_events n ON n.originator_id = c.originator_id
        AND n.originator_version = c.originator_version + 1
)
SELECT originator_id, originator_version, notification_id, tenant_id, hash FROM chain
"""

# The trigger chains its transition table in one planned statement of its own. Passing the rows
# as an array to the SQL function ``duecall_chain`` made Postgres plan that function's
# recursive query afresh on every insert (SQL functions keep no plan between calls); a
# PL/pgSQL statement keeps its plan for the session. Same rows, same hashes; one clock reading
# per statement, as before.

_PLANNED_TRIGGER = f"""
CREATE OR REPLACE FUNCTION duecall_events_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    at timestamptz := clock_timestamp();
BEGIN
    INSERT INTO {HASHES_TABLE}
        (originator_id, originator_version, notification_id, tenant_id, hash, recorded_at)
    SELECT chained.*, at FROM ({CHAINED_NEW_EVENTS}) AS chained
    ON CONFLICT DO NOTHING;  -- a re-inserted row keeps its first hash: verify flags it
    RETURN NULL;
END
$$;
"""

EVENT_STORE_MIGRATIONS = [
    Migration(1, "hash-chain every recorded event", _CHAIN),
    Migration(2, "inlinable chain helpers", _INLINABLE),
    Migration(3, "short, rarer analyzes of the events table", _QUICK_ANALYZE),
    Migration(4, "the chain trigger keeps its query plan", _PLANNED_TRIGGER),
    Migration(5, "the chain trigger finds previous hashes by primary key", _PLANNED_TRIGGER),
]


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
