"""Field types of the API's models: text that can be stored, numbers and booleans that are
not coerced from other JSON types, date-times that are not numbers, JSON bodies that are JSON.

The character rule itself is the domain's (``domain.text``); these apply it to every text a
tenant sends, so that each refusal is a 422 naming the field.
"""

import math
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AllowInfNan,
    AwareDatetime,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    JsonValue,
    Strict,
)
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from domain.text import text_problem

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _storable(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _date_time(value: Any) -> Any:
    """An RFC 3339 text (or a datetime), never a number taken as Unix seconds."""
    if isinstance(value, datetime) or (isinstance(value, str) and _DATE.match(value)):
        return value
    raise ValueError("must be an RFC 3339 date-time, e.g. 2030-01-01T00:00:00Z")


def _whole_number(value: Any) -> Any:
    """JSON Schema's integer: ``1.0`` is one too (``true``, ``"1"`` and ``1.5`` are not)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _json_body(value: JsonValue) -> JsonValue:
    """Every string (keys too) storable, every number finite: it is sent as JSON."""
    pending: list[Any] = [value]
    while pending:  # iterative: a deeply nested body cannot exhaust the stack
        item = pending.pop()
        if isinstance(item, str):
            _storable(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("NaN and Infinity are not JSON numbers")
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return value


class _Storable:
    """The character rule as a validator, and in the JSON schema as far as a pattern can say
    it: no NUL (a lone surrogate cannot be told from half of a pair in a JSON Schema regex)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(_storable, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("pattern", NO_NUL)  # a field's own pattern already says more
        return json_schema


NO_NUL = r"^[^\x00]*$"
# after a length constraint, if any: Annotated[str, Field(max_length=...), Storable]
Storable = _Storable()
SafeText = Annotated[str, Storable]
# strict: a JSON number (an int is a float too), never a boolean (`false` is not 0) or a string
Number = Annotated[float, Strict(), AllowInfNan(False)]
# An integer: a JSON integer or a number with no fraction (JSON Schema's integer: 1.0), never
# a boolean or a string. For an optional one use IntegerOrNone, not `Integer | None`: there
# pydantic (2.14) applies Field bounds around the validator and writes them into the JSON
# schema as `ge`/`le` instead of `minimum`/`maximum` (test_openapi_matches_validation.py).
_WHOLE_NUMBER = BeforeValidator(_whole_number)
Integer = Annotated[int, Strict(), _WHOLE_NUMBER]
IntegerOrNone = Annotated[int | None, Strict(), _WHOLE_NUMBER]
DateTime = Annotated[datetime, BeforeValidator(_date_time)]
AwareDateTime = Annotated[AwareDatetime, BeforeValidator(_date_time)]
JsonBody = Annotated[JsonValue, AfterValidator(_json_body)]


def one_of(choices: Iterable[str]) -> FieldInfo:
    """Text that is one of ``choices``, as the schema's ``enum``: for a value the layer below
    checks (naming the choices in its 422), so that the schema admits no other."""
    enum: list[JsonValue] = [*sorted(choices)]
    info: FieldInfo = Field(json_schema_extra={"enum": enum})
    return info
