"""JSON semantics for workflow expressions: equality, order, membership, truth.

Not Python's: ``true != 1``; ``<`` and friends compare two numbers or two strings and are
false otherwise; ``in`` tests a list's items, a string's substrings or an object's keys; a
value counts as true unless it is false, null, 0, "" or empty (a missing look-up is null).
"""

import operator as operator_
from collections.abc import Mapping

from domain.workflow_paths import MISSING


def truthy(value: object) -> bool:
    if value is MISSING or value is None or value is False:
        return False
    if isinstance(value, int | float | str | list | Mapping):
        return bool(value)
    return True


def compare(operator: str, left: object, right: object) -> bool:
    if operator == "==":
        return equal(left, right)
    if operator == "!=":
        return not equal(left, right)
    if operator == "in":
        return _contains(right, left)
    if operator == "not in":
        return not _contains(right, left)
    if (_number(left) and _number(right)) or (isinstance(left, str) and isinstance(right, str)):
        return bool(_ORDER[operator](left, right))  # type: ignore[arg-type]
    return False


_ORDER = {"<": operator_.lt, "<=": operator_.le, ">": operator_.gt, ">=": operator_.ge}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def equal(left: object, right: object) -> bool:
    """JSON equality: booleans are not numbers; lists and objects compare item by item."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if _number(left) and _number(right):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(equal, left, right))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and left == right


def _contains(container: object, item: object) -> bool:
    if isinstance(container, list):
        return any(equal(item, element) for element in container)
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, Mapping):
        return isinstance(item, str) and item in container
    return False
