"""Many calls as JSON, for `duecall submit -f`: read (a JSON array, NDJSON, one object, or a
batch body ``{"calls": [...]}``) and checked item by item with the API's own models, so a bad
item is named (its number and line) before anything is sent."""

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from domain.errors import InvalidRequestError
from interfaces.api.schemas import ServiceCallBatchItem
from interfaces.cli_errors import CliError

NOTHING_SENT = "nothing was submitted"


@dataclass(frozen=True)
class Item:
    body: dict[str, Any]
    where: str  # "item 3 of calls.json", "item 3 of stdin (line 4)"


def read_items(text: str, origin: str) -> list[Item]:
    """The calls in ``text`` (read from ``origin``, for messages)."""
    if not text.strip():
        raise CliError(f"{origin} holds no calls; {NOTHING_SENT}")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        if text.lstrip().startswith("["):
            raise CliError(f"{origin} is not valid JSON: line {error.lineno}, column "
                           f"{error.colno}: {error.msg}; {NOTHING_SENT}") from None
        return _ndjson(text, origin)
    if isinstance(document, dict) and isinstance(document.get("calls"), list):
        document = document["calls"]
    values = document if isinstance(document, list) else [document]
    items = [_item(value, f"item {n:,} of {origin}") for n, value in enumerate(values, 1)]
    if not items:
        raise CliError(f"{origin} holds no calls; {NOTHING_SENT}")
    return items


def _ndjson(text: str, origin: str) -> list[Item]:
    items: list[Item] = []
    for line_number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"item {len(items) + 1:,} of {origin} (line {line_number:,})"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise CliError(f"{where} is not valid JSON: column {error.colno}: {error.msg}; "
                           f"{NOTHING_SENT}") from None
        items.append(_item(value, where))
    return items


def _item(value: Any, where: str) -> Item:
    if not isinstance(value, dict):
        raise CliError(f"{where} is not a JSON object (a call); {NOTHING_SENT}")
    return Item(value, where)


def check_items(items: list[Item]) -> None:
    """Each item valid as the batch endpoint will find it (the server's size limits aside)."""
    for item in items:
        try:
            ServiceCallBatchItem.model_validate(item.body).request.spec()
        except ValidationError as error:
            first, count = error.errors()[0], error.error_count()
            field = ".".join(str(part) for part in first["loc"]) or "the item"
            more = f" (and {count - 1} more)" if count > 1 else ""
            raise CliError(f"{item.where}: {field}: {first['msg']}{more}; {NOTHING_SENT}") from None
        except InvalidRequestError as error:
            where = f"{item.where}: {error.field}"
            raise CliError(f"{where}: {error.message}; {NOTHING_SENT}") from None
