"""Folding a batch of events into rows in memory, then writing them with a few statements.

A projector turns each event into an insert (a new row) or an update (some columns of an
existing row). Changes to the same row within a batch are merged in order; then each set of
columns inserted or updated becomes a ``Write``, its rows sent as a JSON array (orjson) and read
back with the table's row type, and a projector's writes go to the database as ONE statement
(data-modifying ``WITH`` queries), so a batch of a thousand events costs a handful of
statements, not a thousand. Every value written is absolute (no increments), so merging is just
``dict.update``.
"""

from collections.abc import Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import orjson
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Identifier
from psycopg.types.json import Json


@dataclass(frozen=True)
class Write:
    """Rows for one table, every row with the same columns (its keys): inserted (``key`` None;
    ``clause`` may add an ``ON CONFLICT``, the table as ``s``) or updated, found by ``key``
    (each ``key`` once; ``clause`` may add ``AND`` conditions, the table as ``t``). The keys
    are also given as an array (``t.key = ANY(...)``): the planner takes the recordset for 100
    rows and would scan the whole table to join it."""

    table: str
    rows: Sequence[dict[str, Any]]
    key: str | None = None
    clause: str = ""

    def shape(self) -> tuple[str, str | None, tuple[str, ...], str]:
        return self.table, self.key, tuple(self.rows[0]), self.clause

    def params(self) -> list[Any]:
        rows = Json(self.rows, dumps=orjson.dumps)
        return [rows] if self.key is None else [rows, [row[self.key] for row in self.rows]]


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

    def writes(self) -> list[Write]:
        """The inserts (by columns), then the updates of rows inserted by earlier batches."""
        keyed = ({self.key: key, **values} for key, values in self.updates.items())
        return [*(Write(self.table, rows) for rows in _by_columns(self.inserts.values())),
                *(Write(self.table, rows, self.key) for rows in _by_columns(keyed))]

    def flush(self, curs: Cursor[DictRow]) -> None:
        write_json(curs, self.writes())
        self.inserts.clear()
        self.updates.clear()


def write_json(curs: Cursor[DictRow], writes: Iterable[Write]) -> None:
    """The writes that have rows, in ONE statement: all but the last as data-modifying
    ``WITH`` queries. Its parts do not see each other's changes and a statement changes a row
    once at most, so the writes must be to distinct rows."""
    parts = [write for write in writes if write.rows]
    if parts:
        curs.execute(_statement(tuple(write.shape() for write in parts)),
                     [param for write in parts for param in write.params()])


@lru_cache(maxsize=256)
def _statement(shapes: tuple[tuple[str, str | None, tuple[str, ...], str], ...]) -> bytes:
    """The statement of ``write_json`` (built once per shape of its writes)."""
    *first, last = [_part(*shape) for shape in shapes]
    if not first:
        return last
    queries = b", ".join(b"w%d AS (%s)" % (i, part) for i, part in enumerate(first))
    return b"WITH " + queries + b" " + last


def _part(table: str, key: str | None, columns: tuple[str, ...], clause: str) -> bytes:
    if key is None:
        statement = SQL("INSERT INTO {table} AS s ({columns}) SELECT {columns} FROM {rows} "
                        "{clause}")
        return statement.format(
            table=Identifier(table), columns=_columns(columns), rows=_recordset(table),
            clause=SQL(clause),
        ).as_bytes(None)
    statement = SQL("UPDATE {table} AS t SET {assignments} FROM {rows} AS v "
                    "WHERE t.{key} = v.{key} AND t.{key} = ANY(%s) {clause}")
    assignments = [SQL("{0} = v.{0}").format(Identifier(c)) for c in columns if c != key]
    return statement.format(
        table=Identifier(table), assignments=SQL(", ").join(assignments),
        rows=_recordset(table), key=Identifier(key), clause=SQL(clause),
    ).as_bytes(None)


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


def _columns(columns: Iterable[str]) -> Composable:
    return SQL(", ").join(map(Identifier, columns))


def _recordset(table: str) -> Composable:
    return SQL("json_populate_recordset(NULL::{}, %s)").format(Identifier(table))
