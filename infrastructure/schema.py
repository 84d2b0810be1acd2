"""Migrations of duecall's own write-side tables (the outbox, the idempotency keys, the
registries) and of the functions that record a transaction and claim start messages."""

from infrastructure.migrations import Migration

OUTBOX_TABLE = "duecall_outbox"
OUTBOX_CHANNEL = "duecall_outbox"
SLOT_FREED = "slot_freed"  # notified on OUTBOX_CHANNEL when attempts in flight end

IDEMPOTENCY_TABLE = "duecall_idempotency_keys"
WORKERS_TABLE = "duecall_workers"  # live worker processes and their heartbeats
# The process a connection works for (``SET duecall.worker``, on the outbox pool's
# connections): the outbox rows it claims are leased to it (``worker_id``), so that when it
# stops beating its leases end at once (infrastructure.worker_registry).
WORKER_SETTING = "duecall.worker"
LEASE_HOLDER = f"nullif(current_setting('{WORKER_SETTING}', true), '')::uuid"
CIRCUITS_TABLE = "duecall_circuits"
TENANTS_TABLE = "duecall_tenants"

EVENTS_TABLE = "duecall_events"  # eventsourcing's table for the application named "duecall"
EVENTS_CHANNEL = EVENTS_TABLE  # eventsourcing NOTIFYs the table's name on every insert

# One statement records a transaction: what it writes besides its events (outbox rows consumed
# and published with their NOTIFYs, Idempotency-Keys, registry rows), then the events as
# eventsourcing writes them (lock the table, NOTIFY its channel, insert; the notification ids
# come back in insert order). Sent alone on an autocommit connection it is its own transaction:
# one round trip. A fresh outbox row has id 0 (the sequence numbers it); a row leased to its
# publisher (``application.outbox.leased_here``) comes with its id and claims, replacing the
# ``start`` row (its id negated) consumed here: it stays leased to that row's worker. Rows
# withdrawn by key (``OutboxChanges.withdraw``: a payload's ``withdraw_key``, found through
# a partial index) are deleted wherever they are, claimed or not.
RECORD_FUNCTION = "duecall_record"
WITHDRAW_INDEX = f"{OUTBOX_TABLE}_withdraw_key"
_RECORD = f"""
CREATE OR REPLACE FUNCTION {RECORD_FUNCTION}(
    lock_timeout text, consume bigint[], withdraw text[],
    o_id bigint[], o_kind text[], o_tenant text[], o_call uuid[], o_attempt integer[],
    o_due timestamptz[], o_available timestamptz[], o_lease double precision[], o_host text[],
    o_payload jsonb[], o_claims integer[], notify text[],
    k_tenant text[], k_key text[], k_call uuid[], k_hash text[],
    c_tenant text[], c_host text[], c_id uuid[], tenants text[],
    e_id uuid[], e_version bigint[], e_topic text[], e_state bytea[]
) RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(o_kind) > 0 THEN
        INSERT INTO {OUTBOX_TABLE} (id, kind, tenant_id, service_call_id, attempt, due_at,
            available_at, lease_seconds, host, payload, claims, worker_id)
        SELECT coalesce(nullif(i, 0), nextval('{OUTBOX_TABLE}_id_seq')), k, t, c, a, d, av, l,
            h, p, n,
            CASE WHEN i < 0 THEN (SELECT s.worker_id FROM {OUTBOX_TABLE} s WHERE s.id = -i) END
        FROM unnest(o_id, o_kind, o_tenant, o_call, o_attempt, o_due, o_available, o_lease,
            o_host, o_payload, o_claims) AS o(i, k, t, c, a, d, av, l, h, p, n);
    END IF;
    IF cardinality(consume) > 0 THEN
        DELETE FROM {OUTBOX_TABLE} WHERE id = ANY(consume);
    END IF;
    IF cardinality(withdraw) > 0 THEN
        DELETE FROM {OUTBOX_TABLE}
        WHERE payload ? 'withdraw_key' AND payload->>'withdraw_key' = ANY(withdraw);
    END IF;
    IF cardinality(k_key) > 0 THEN  -- a key taken fails the whole transaction
        INSERT INTO {IDEMPOTENCY_TABLE} (tenant_id, key, service_call_id, request_hash)
        SELECT * FROM unnest(k_tenant, k_key, k_call, k_hash);
    END IF;
    IF cardinality(c_id) > 0 THEN
        INSERT INTO {CIRCUITS_TABLE} (tenant_id, host, circuit_id)
        SELECT * FROM unnest(c_tenant, c_host, c_id) ON CONFLICT DO NOTHING;
    END IF;
    IF cardinality(tenants) > 0 THEN
        INSERT INTO {TENANTS_TABLE} (name) SELECT unnest(tenants) ON CONFLICT DO NOTHING;
    END IF;
    PERFORM pg_notify('{OUTBOX_CHANNEL}', n) FROM unnest(notify) AS n;
    IF cardinality(e_id) > 0 THEN
        PERFORM set_config('lock_timeout', lock_timeout, true);
        LOCK TABLE {EVENTS_TABLE} IN EXCLUSIVE MODE;
        PERFORM pg_notify('{EVENTS_CHANNEL}', '');
        RETURN QUERY INSERT INTO {EVENTS_TABLE} (originator_id, originator_version, topic, state)
            SELECT * FROM unnest(e_id, e_version, e_topic, e_state) RETURNING notification_id;
    END IF;
END
$$;
"""

# The timer's claim of ``start`` messages, honouring concurrency limits: an attempt is in
# flight from the claim of its ``start`` message until its outcome is recorded (its ``execute``
# message exists meanwhile). Timers take turns (an advisory lock held for the transaction), so
# two never fill the same free slots; inside the function the claim then runs on a snapshot
# taken after the lock. Besides the claimed rows it returns one row with no id: the seconds
# until the next ``start`` message becomes available, as the claim left them (NULL: none).
# Each claimed row carries, read in the claim's snapshot, its call's events and the circuit
# registered for its tenant and host (NULL: none), so a start due now needs no read of its own.
CLAIM_STARTS_FUNCTION = "duecall_claim_starts"
_CLAIM_STARTS = f"""
CREATE OR REPLACE FUNCTION {CLAIM_STARTS_FUNCTION}(
    wanted integer, lookahead double precision, considered integer, tenant_limit integer,
    host_limit integer
) RETURNS TABLE (id bigint, kind text, tenant_id text, service_call_id uuid, attempt integer,
    due_at timestamptz, available_at timestamptz, lease_seconds double precision,
    claims integer, host text, payload jsonb, next_seconds double precision,
    e_versions bigint[], e_topics text[], e_states bytea[], circuit_id uuid)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('duecall_outbox_start_claim'));
    RETURN QUERY
    WITH busy AS (
        SELECT tenant_id, host, count(*) AS n FROM {OUTBOX_TABLE}
        WHERE kind = 'execute' OR (kind = 'start' AND claims > 0 AND available_at > now())
        GROUP BY tenant_id, host
    ),
    busy_tenant AS (SELECT tenant_id, sum(n) AS n FROM busy GROUP BY tenant_id),
    due AS (
        SELECT id, tenant_id, host, available_at FROM {OUTBOX_TABLE}
        WHERE kind = 'start' AND available_at <= now() + make_interval(secs => lookahead)
        ORDER BY available_at, id
        LIMIT considered
    ),
    ranked AS (
        SELECT id, tenant_id, host, available_at,
            row_number() OVER (PARTITION BY tenant_id ORDER BY available_at, id) AS tenant_rank,
            row_number() OVER (PARTITION BY tenant_id, host ORDER BY available_at, id)
                AS host_rank
        FROM due
    ),
    allowed AS (
        SELECT r.id FROM ranked r
        LEFT JOIN busy_tenant t ON t.tenant_id = r.tenant_id
        LEFT JOIN busy b ON b.tenant_id = r.tenant_id AND b.host = r.host
        WHERE coalesce(t.n, 0) + r.tenant_rank <= tenant_limit
          AND coalesce(b.n, 0) + r.host_rank <= host_limit
        ORDER BY r.available_at, r.id
        LIMIT wanted
    ),
    claimed AS (
        UPDATE {OUTBOX_TABLE} AS o
        SET available_at = greatest(o.available_at, now())
                + make_interval(secs => o.lease_seconds),
            claims = o.claims + 1, worker_id = {LEASE_HOLDER}
        FROM allowed WHERE o.id = allowed.id
        RETURNING o.id, o.kind, o.tenant_id, o.service_call_id, o.attempt, o.due_at,
            o.available_at, o.lease_seconds, o.claims, o.host, o.payload
    )
    SELECT c.*, NULL::double precision, e.versions, e.topics, e.states, r.circuit_id
    FROM claimed AS c
    LEFT JOIN LATERAL (
        SELECT array_agg(originator_version ORDER BY originator_version) AS versions,
            array_agg(topic ORDER BY originator_version) AS topics,
            array_agg(state ORDER BY originator_version) AS states
        FROM {EVENTS_TABLE} WHERE originator_id = c.service_call_id
    ) AS e ON true
    LEFT JOIN {CIRCUITS_TABLE} AS r ON r.tenant_id = c.tenant_id AND r.host = c.host;
    RETURN QUERY
    SELECT NULL::bigint, NULL::text, NULL::text, NULL::uuid, NULL::integer, NULL::timestamptz,
        NULL::timestamptz, NULL::double precision, NULL::integer, NULL::text, NULL::jsonb,
        extract(epoch FROM min(o.available_at) - now())::double precision,
        NULL::bigint[], NULL::text[], NULL::bytea[], NULL::uuid
    FROM {OUTBOX_TABLE} AS o WHERE o.kind = 'start';
END
$$;
"""

CORE_MIGRATIONS = [
    Migration(
        1,
        "create outbox",
        f"""
        CREATE TABLE IF NOT EXISTS {OUTBOX_TABLE} (
            id bigserial PRIMARY KEY,
            kind text NOT NULL,
            tenant_id text NOT NULL,
            service_call_id uuid NOT NULL,
            attempt integer NOT NULL,
            due_at timestamptz NOT NULL,
            available_at timestamptz NOT NULL,
            lease_seconds double precision NOT NULL,
            claims integer NOT NULL DEFAULT 0,
            payload jsonb NOT NULL DEFAULT '{{}}'::jsonb
        );
        CREATE INDEX IF NOT EXISTS {OUTBOX_TABLE}_kind_available
            ON {OUTBOX_TABLE} (kind, available_at);
        """,
    ),
    Migration(
        2,
        "create idempotency keys",
        f"""
        CREATE TABLE IF NOT EXISTS {IDEMPOTENCY_TABLE} (
            tenant_id text NOT NULL,
            key text NOT NULL,
            service_call_id uuid NOT NULL,
            request_hash text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, key)
        );
        """,
    ),
    Migration(
        3,
        "outbox host column for concurrency limits",
        f"ALTER TABLE {OUTBOX_TABLE} ADD COLUMN IF NOT EXISTS host text NOT NULL DEFAULT ''",
    ),
    Migration(
        4,
        "circuit registry",
        f"""
        CREATE TABLE IF NOT EXISTS {CIRCUITS_TABLE} (
            tenant_id text NOT NULL,
            host text NOT NULL,
            circuit_id uuid NOT NULL,
            PRIMARY KEY (tenant_id, host)
        );
        """,
    ),
    Migration(
        5,
        "tenant registry",
        f"""
        CREATE TABLE IF NOT EXISTS {TENANTS_TABLE} (
            name text PRIMARY KEY,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        """,
    ),
    Migration(6, "one statement records a transaction", _RECORD),
    Migration(7, "one statement claims start messages", _CLAIM_STARTS),
    Migration(
        8,
        "worker liveness: leases name their worker",
        f"""
        CREATE TABLE IF NOT EXISTS {WORKERS_TABLE} (
            id uuid PRIMARY KEY,
            host text NOT NULL,
            pid integer NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            heartbeat_at timestamptz NOT NULL DEFAULT now(),
            in_flight integer NOT NULL DEFAULT 0
        );
        ALTER TABLE {OUTBOX_TABLE} ADD COLUMN IF NOT EXISTS worker_id uuid;
        {_RECORD}
        {_CLAIM_STARTS}
        """,
    ),
    Migration(
        9,
        "messages withdrawn by key (a workflow step's timeout once the step ended)",
        # the function with one parameter more replaces the one without it (a new signature
        # is another function to Postgres); the index holds only the few rows that have a key
        f"""
        CREATE INDEX IF NOT EXISTS {WITHDRAW_INDEX} ON {OUTBOX_TABLE}
            ((payload->>'withdraw_key')) WHERE payload ? 'withdraw_key';
        DROP FUNCTION IF EXISTS {RECORD_FUNCTION}(
            text, bigint[], bigint[], text[], text[], uuid[], integer[], timestamptz[],
            timestamptz[], double precision[], text[], jsonb[], integer[], text[],
            text[], text[], uuid[], text[], text[], text[], uuid[], text[],
            uuid[], bigint[], text[], bytea[]);
        {_RECORD}
        """,
    ),
    Migration(
        10,
        "a start claim carries its calls' events",
        # another return type: the function is dropped first
        f"""
        DROP FUNCTION IF EXISTS {CLAIM_STARTS_FUNCTION}(
            integer, double precision, integer, integer, integer);
        {_CLAIM_STARTS}
        """,
    ),
]
