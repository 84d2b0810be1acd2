"""Folding a batch of events into rows in memory, then writing them with a few statements.

A projector turns each event into an insert (a new row) or an update (some columns of an
existing row). Changes to the same row within a batch are merged in order, so a batch of a
thousand events costs a handful of ``executemany`` round trips (psycopg pipelines them), not a
thousand. Every value written is absolute (no increments), so merging is just ``dict.update``.
"""

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier, Placeholder


@dataclass
class RowChanges:
    table: str
    key: str = "id"
    inserts: dict[Hashable, dict[str, Any]] = field(default_factory=dict)
    updates: dict[Hashable, dict[str, Any]] = field(default_factory=dict)

    def insert(self, key: Hashable, row: dict[str, Any]) -> None:
        self.inserts[key] = {self.key: key, **row}

    def update(self, key: Hashable, values: dict[str, Any]) -> None:
        target = self.inserts.get(key)
        if target is None:
            target = self.updates.setdefault(key, {})
        target.update(values)

    def flush(self, curs: Cursor[DictRow]) -> None:
        for columns, rows in _by_columns(self.inserts.values()).items():
            curs.executemany(_insert_sql(self.table, columns), rows)
        keyed = ({**values, self.key: key} for key, values in self.updates.items())
        for columns, rows in _by_columns(keyed).items():
            curs.executemany(_update_sql(self.table, self.key, columns), rows)
        self.inserts.clear()
        self.updates.clear()


def insert_json(
    curs: Cursor[DictRow], table: str, rows: Sequence[dict[str, Any]], conflict: str = ""
) -> None:
    """Insert many rows with ONE statement: sent as a JSON array (orjson), read back with the
    table's row type (every column given; ``conflict`` may refer to the table as ``s``)."""
    if rows:
        curs.execute(
            f"INSERT INTO {table} AS s SELECT * FROM json_populate_recordset(NULL::{table}, "
            f"%s::json) {conflict}",
            (orjson.dumps(rows).decode(),),
        )


def host_of(url: object) -> str:
    return (urlsplit(url).hostname or "") if isinstance(url, str) else ""


def _by_columns(rows: Any) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return groups


def _insert_sql(table: str, columns: tuple[str, ...]) -> SQL:
    return SQL("INSERT INTO {} ({}) VALUES ({})").format(  # type: ignore[return-value]
        Identifier(table),
        SQL(", ").join(map(Identifier, columns)),
        SQL(", ").join(map(Placeholder, columns)),
    )


def _update_sql(table: str, key: str, columns: tuple[str, ...]) -> SQL:
    assignments = [
        SQL("{} = {}").format(Identifier(c), Placeholder(c)) for c in columns if c != key
    ]
    return SQL("UPDATE {} SET {} WHERE {} = {}").format(  # type: ignore[return-value]
        Identifier(table), SQL(", ").join(assignments), Identifier(key), Placeholder(key)
    )
