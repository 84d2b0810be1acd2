"""The statistics read model's tables, their columns, and their versioned migrations.

One table per bucket size (minute, hour, day). A row is keyed by tenant, roll-up ``level``,
bucket, host and name: level 3 is one (host, name), 1 one host (name ``*``), 2 one name
(host ``*``) and 0 everything (``*``, ``*``), so a query reads exactly the rows of one level,
one per bucket and group, from the primary key.
"""

from datetime import UTC, datetime

from domain.outcome import ErrorKind
from infrastructure.migrations import Migration
from projections.index_keys import INDEX_KEY_FUNCTIONS, key
from projections.runner import TRACKING_TABLE

GRANULARITIES = ("minute", "hour", "day")
NAMES = "duecall_rm_stats_call_names"  # call id → name, this projection's own copy
PENDING = "duecall_rm_stats_running"  # started executions whose outcome is still to come
ALL = "*"
BY_HOST, BY_NAME = 1, 2
KEY = ("tenant_id", "level", "bucket", "host", "name")
OUTCOMES = ("succeeded", "failed")
ERROR_KINDS = (*sorted(kind.value for kind in ErrorKind), "other")  # failures by error kind
# Per outcome: executions, retries among them (attempt > 1), summed duration (µs); then errors.
COUNTS = (
    *(f"{outcome}{suffix}" for outcome in OUTCOMES for suffix in ("", "_retries", "_us")),
    *(f"errors_{kind}" for kind in ERROR_KINDS),
)
HISTOGRAMS = ("latency", "succeeded_latency", "failed_latency")  # cumulative (histogram.py)


def table(granularity: str) -> str:
    return f"duecall_rm_stats_{granularity}"


def buckets(moment: datetime) -> tuple[datetime, datetime, datetime]:
    """The minute, hour and day (UTC) that ``moment`` falls in."""
    minute = moment.astimezone(UTC).replace(second=0, microsecond=0)
    hour = minute.replace(minute=0)
    return minute, hour, hour.replace(hour=0)


def truncate(moment: datetime, granularity: str) -> datetime:
    return buckets(moment)[GRANULARITIES.index(granularity)]


def _stats_table(granularity: str) -> str:
    columns = [
        "tenant_id text NOT NULL", "level smallint NOT NULL", "bucket timestamptz NOT NULL",
        "host text NOT NULL", "name text NOT NULL",
        *(f"{c} bigint NOT NULL" for c in COUNTS),
        *(f"{h} bigint[] NOT NULL" for h in HISTOGRAMS),
        f"PRIMARY KEY ({', '.join(KEY)})",
    ]
    return f"CREATE TABLE {table(granularity)} ({', '.join(columns)});\n"


_V1 = f"""
CREATE OR REPLACE FUNCTION duecall_array_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a ELSE ARRAY(
        SELECT coalesce(x, 0) + coalesce(y, 0)
        FROM unnest(a, b) WITH ORDINALITY AS u(x, y, i) ORDER BY i) END
$$;
CREATE OR REPLACE FUNCTION duecall_counts_add(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(k, coalesce((a->>k)::bigint, 0)
                                       + coalesce((b->>k)::bigint, 0)), '{{}}')
    FROM (SELECT jsonb_object_keys(a) UNION SELECT jsonb_object_keys(b)) AS keys(k)
$$;
CREATE TABLE IF NOT EXISTS {NAMES} (id uuid PRIMARY KEY, name text NOT NULL);
CREATE TABLE IF NOT EXISTS {PENDING} (
    id uuid PRIMARY KEY, tenant_id text NOT NULL, service_call_id uuid NOT NULL,
    host text NOT NULL, attempt integer NOT NULL
);
""" + "".join(
    f"""
CREATE TABLE IF NOT EXISTS {table(g)} (
    tenant_id text NOT NULL, bucket timestamptz NOT NULL, host text NOT NULL, name text NOT NULL,
    succeeded bigint NOT NULL, failed bigint NOT NULL,
    succeeded_retries bigint NOT NULL, failed_retries bigint NOT NULL,
    succeeded_us bigint NOT NULL, failed_us bigint NOT NULL,
    succeeded_histogram bigint[] NOT NULL, failed_histogram bigint[] NOT NULL,
    errors jsonb NOT NULL,
    PRIMARY KEY (tenant_id, bucket, host, name)
);"""
    for g in GRANULARITIES
)

# Two cumulative histograms add element-wise; a shorter one repeats its last element.
_CUMULATIVE_ADD = """
CREATE OR REPLACE FUNCTION duecall_cumulative_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ARRAY(
        SELECT coalesce(a[least(i, cardinality(a))], 0) + coalesce(b[least(i, cardinality(b))], 0)
        FROM generate_series(1, greatest(cardinality(a), cardinality(b))) AS i ORDER BY i)
$$;
"""

_V2 = (
    f"DROP TABLE IF EXISTS {', '.join(table(g) for g in GRANULARITIES)};\n"
    "DROP FUNCTION IF EXISTS duecall_counts_add(jsonb, jsonb);\n"
    "DROP FUNCTION IF EXISTS duecall_array_add(bigint[], bigint[]);\n"
    f"TRUNCATE {NAMES}, {PENDING};\n"
    f"UPDATE {TRACKING_TABLE} SET notification_id = 0 WHERE application_name = 'statistics';\n"
    + _CUMULATIVE_ADD
    + "".join(_stats_table(g) for g in GRANULARITIES)
)

# The unique key over bounded keys of host and name, not the text (see index_keys.py).
UNIQUE_KEY = ("tenant_id", "level", "bucket", key("host"), key("name"))
_V3 = INDEX_KEY_FUNCTIONS + "".join(
    f"ALTER TABLE {table(g)} DROP CONSTRAINT IF EXISTS {table(g)}_pkey;\n"
    f"CREATE UNIQUE INDEX IF NOT EXISTS {table(g)}_key ON {table(g)} ({', '.join(UNIQUE_KEY)});\n"
    for g in GRANULARITIES
)

# The same sum as ``_CUMULATIVE_ADD``, in PL/pgSQL: its plan is kept for the session (an SQL
# function with a subquery is planned again in every statement that calls it).
_V4 = """
CREATE OR REPLACE FUNCTION duecall_cumulative_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    na integer := cardinality(a);
    nb integer := cardinality(b);
    sum bigint[] := '{}';
BEGIN
    FOR i IN 1 .. greatest(na, nb) LOOP
        sum[i] := coalesce(a[least(i, na)], 0) + coalesce(b[least(i, nb)], 0);
    END LOOP;
    RETURN sum;
END
$$;
"""

MIGRATIONS = [
    Migration(1, "create statistics read model", _V1),
    Migration(2, "statistics: roll-up levels, error kind columns, cumulative latency", _V2),
    Migration(3, "statistics: unique key over bounded keys of host and name", _V3),
    Migration(4, "statistics: the cumulative histogram sum in PL/pgSQL", _V4),
]
