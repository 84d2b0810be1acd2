"""The outbox table's migrations."""

from infrastructure.migrations import Migration

OUTBOX_TABLE = "duecall_outbox"
OUTBOX_CHANNEL = "duecall_outbox"

OUTBOX_MIGRATIONS = [
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
]
