"""Folding a batch of events into rows in memory, then writing them with a few statements.

A projector turns each event into an insert (a new row) or an update (some columns of an
existing row). Changes to the same row within a batch are merged in order; then each table gets
ONE statement per set of columns inserted and per set of columns updated, its rows sent as a
JSON array (orjson) and read back with the table's row type, so a batch of a thousand events
costs a handful of statements, not a thousand. Every value written is absolute (no
increments), so merging is just ``dict.update``.
"""

from collections.abc import Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Identifier
from psycopg.types.json import Json


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
        for rows in _by_columns(self.inserts.values()):
            insert_json(curs, self.table, rows)
        keyed = ({self.key: key, **values} for key, values in self.updates.items())
        for rows in _by_columns(keyed):
            update_json(curs, self.table, self.key, rows)
        self.inserts.clear()
        self.updates.clear()


def insert_json(
    curs: Cursor[DictRow], table: str, rows: Sequence[dict[str, Any]], conflict: str = ""
) -> None:
    """Insert many rows with ONE statement. Every row has the same columns (its keys); the
    table's other columns take their defaults. ``conflict`` may refer to the table as ``s``."""
    if rows:
        columns = _columns(rows[0])
        curs.execute(
            SQL("INSERT INTO {table} AS s ({columns}) SELECT {columns} FROM {rows} {conflict}")
            .format(table=Identifier(table), columns=columns, rows=_recordset(table),
                    conflict=SQL(conflict)),
            (Json(rows, dumps=orjson.dumps),),
        )


def update_json(
    curs: Cursor[DictRow], table: str, key: str, rows: Sequence[dict[str, Any]], also: str = ""
) -> None:
    """Update many rows, found by ``key``, with ONE statement. Every row has the same columns
    (its keys, ``key`` among them; each ``key`` once); ``also`` may add ``AND`` conditions on
    the table as ``t``."""
    if rows:
        assignments = [SQL("{0} = v.{0}").format(Identifier(c)) for c in rows[0] if c != key]
        curs.execute(
            SQL("UPDATE {table} AS t SET {assignments} FROM {rows} AS v "
                "WHERE t.{key} = v.{key} {also}")
            .format(table=Identifier(table), assignments=SQL(", ").join(assignments),
                    rows=_recordset(table), key=Identifier(key),
                    also=SQL(also)),
            (Json(rows, dumps=orjson.dumps),),
        )


def names_of(curs: Cursor[DictRow], table: str, ids: Collection[Hashable]) -> dict[Any, str]:
    """``name`` by ``id`` from ``table``, for those of ``ids`` it has (one query)."""
    if not ids:
        return {}
    curs.execute(
        SQL("SELECT id, name FROM {} WHERE id = ANY(%s)").format(Identifier(table)), (list(ids),)
    )
    return {row["id"]: row["name"] for row in curs.fetchall()}


def host_of(url: object) -> str:
    return (urlsplit(url).hostname or "") if isinstance(url, str) else ""


def _by_columns(rows: Iterable[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(frozenset(row), []).append(row)
    return groups.values()


def _columns(row: dict[str, Any]) -> Composable:
    return SQL(", ").join(map(Identifier, row))


def _recordset(table: str) -> Composable:
    return SQL("json_populate_recordset(NULL::{}, %s)").format(Identifier(table))
