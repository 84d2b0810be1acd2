"""Migrations of duecall's own write-side tables: the outbox and the idempotency keys."""

from infrastructure.migrations import Migration

OUTBOX_TABLE = "duecall_outbox"
OUTBOX_CHANNEL = "duecall_outbox"
SLOT_FREED = "slot_freed"  # notified on OUTBOX_CHANNEL when attempts in flight end

IDEMPOTENCY_TABLE = "duecall_idempotency_keys"
CIRCUITS_TABLE = "duecall_circuits"
TENANTS_TABLE = "duecall_tenants"

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
]
