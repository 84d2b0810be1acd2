"""Shared query building for the read models: filters, keyset pagination, opaque cursors.

A page is ordered by (sort column, id); the cursor carries the last row's pair, so the next
page starts strictly after it: rows inserted meanwhile never shift or repeat a page.
"""

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow

from domain.errors import InvalidRequestError
from projections.index_keys import key_equals

MAX_LIMIT = 100


@dataclass(frozen=True)
class Sort:
    name: str  # as the API spells it, e.g. "-created"
    column: str
    descending: bool


@dataclass
class Where:
    clauses: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, clause: str, *params: Any) -> "Where":
        self.clauses.append(clause)
        self.params.extend(params)
        return self

    def equals(self, column: str, value: Any) -> "Where":
        return self if value is None else self.add(f"{column} = %s", value)

    def keyed(self, column: str, value: str | None) -> "Where":
        """``column = value`` through an index on the column's bounded key (index_keys.py)."""
        return self if value is None else self.add(key_equals(column), value, value)

    def any_of(self, column: str, values: list[str] | None) -> "Where":
        return self.add(f"{column} = ANY(%s)", list(values)) if values else self

    def between(
        self, field_name: str, column: str, start: datetime | None, end: datetime | None
    ) -> "Where":
        """``start <= column < end``; a range that ends before it starts names its field."""
        if start is not None and end is not None and end < start:
            raise InvalidRequestError(f"{field_name}_to", f"is before {field_name}_from")
        if start is not None:
            self.add(f"{column} >= %s", start)
        if end is not None:
            self.add(f"{column} < %s", end)
        return self

    @property
    def sql(self) -> str:
        return " AND ".join(self.clauses) or "TRUE"


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None
    total: int | None = None


def check_choices(field_name: str, values: list[str] | None, allowed: frozenset[str]) -> None:
    unknown = sorted(set(values or ()) - allowed)
    if unknown:
        choices = ", ".join(sorted(allowed))
        raise InvalidRequestError(field_name, f"unknown value {unknown[0]!r} (one of: {choices})")


def fetch_page(
    curs: Cursor[DictRow],
    table: str,
    where: Where,
    sort: Sort,
    limit: int,
    cursor: str | None = None,
    include_total: bool = False,
    columns: Sequence[str] | None = None,
) -> Page:
    """A page of ``table``'s rows (``columns`` of them, or every one; the sort column and
    ``id`` among them)."""
    total = _count(curs, table, where) if include_total else None
    page_where = Where(list(where.clauses), list(where.params))
    if cursor is not None:
        value, last_id = decode_cursor(sort, cursor)
        op = "<" if sort.descending else ">"
        page_where.add(f"({sort.column}, id) {op} (%s, %s)", value, last_id)
    order = "DESC" if sort.descending else "ASC"
    curs.execute(
        f"SELECT {', '.join(columns) if columns else '*'} FROM {table} WHERE {page_where.sql} "
        f"ORDER BY {sort.column} {order}, id {order} LIMIT %s",
        [*page_where.params, limit + 1],
    )
    rows = curs.fetchall()
    more = len(rows) > limit
    items = [dict(row) for row in rows[:limit]]
    next_cursor = encode_cursor(sort, items[-1][sort.column], items[-1]["id"]) if more else None
    return Page(items, next_cursor, total)


def encode_cursor(sort: Sort, value: datetime, last_id: UUID) -> str:
    raw = json.dumps([sort.name, value.isoformat(), str(last_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: Sort, cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, value, last_id = json.loads(raw)
        decoded = datetime.fromisoformat(value), UUID(last_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidRequestError("cursor", "is not a cursor this API returned") from None
    if name != sort.name:
        raise InvalidRequestError("cursor", f"was made for sort {name!r}, not {sort.name!r}")
    return decoded


def _count(curs: Cursor[DictRow], table: str, where: Where) -> int:
    curs.execute(f"SELECT count(*) AS n FROM {table} WHERE {where.sql}", where.params)
    row = curs.fetchone()
    return int(row["n"]) if row else 0
