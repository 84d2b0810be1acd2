"""The character rule for text a tenant sends: it must be storable (PostgreSQL text and
jsonb hold no NUL) and encodable (UTF-8 has no lone surrogates)."""

import re

from domain.errors import InvalidRequestError

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be accepted, or None when it can."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "cannot contain NUL characters"
    return "cannot contain lone surrogates (U+D800 to U+DFFF)"


def check_text(field: str, value: str) -> None:
    """Raise ``InvalidRequestError`` naming ``field`` when ``value`` breaks the rule."""
    problem = text_problem(value)
    if problem is not None:
        raise InvalidRequestError(field, problem)
