"""A statement larger than the socket's send buffer, in a psycopg pipeline, is sent whole before
``sync()`` waits for its results (it hung forever: infrastructure/pipeline_flush.py)."""

import psycopg

import infrastructure.recorder  # noqa: F401  (installs the fix, as every duecall process does)


def test_a_4_mib_statement_in_a_pipeline_completes(database_url: str) -> None:
    big = "x" * (4 * 1024 * 1024)  # hung at 1 MiB on a Unix socket, 64 MiB over TCP
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TEMPORARY TABLE big_values (v text)")
        with conn.pipeline() as pipeline, conn.transaction(), conn.cursor() as curs:
            curs.execute("INSERT INTO big_values VALUES (%s)", (big,))
            pipeline.sync()
        row = conn.execute("SELECT length(v) FROM big_values").fetchone()
    assert row == (len(big),)
