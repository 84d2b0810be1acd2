"""The tokens of workflow expressions and template look-ups: a tiny lexer of our own.

Shared by ``workflow_expressions`` (``when``, ``success``) and ``workflow_templates``
(``{{ ... }}``). Tokens are literals (JSON numbers, quoted strings, true/false/null), dotted
paths (``steps.auth.outputs.token``, ``body.items.0``), keywords (and, or, not, in) and
punctuation. Errors name the field and the 1-based position in the text.
"""

import re
from dataclasses import dataclass
from enum import StrEnum

from domain.errors import InvalidRequestError

# a path: names (step ids may hold '-') or list indices, joined by dots
_SEGMENT = r"[A-Za-z_][A-Za-z0-9_-]*"
_PATH = re.compile(rf"{_SEGMENT}(?:\.(?:{_SEGMENT}|[0-9]+))*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_PUNCTUATION = ("==", "!=", "<=", ">=", "<", ">", "(", ")", "[", "]", ",", "|")
KEYWORDS = frozenset({"and", "or", "not", "in"})
LITERAL_WORDS = {"true": True, "false": False, "null": None}
MAX_NUMBER_LENGTH = 40  # no 10**100000-digit integers (int() of them is quadratic)


class Kind(StrEnum):
    PATH = "path"
    LITERAL = "literal"
    KEYWORD = "keyword"
    PUNCT = "punctuation"
    END = "end"


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str  # as written (the operator, keyword or path)
    position: int  # 1-based, in the text the field holds
    value: object = None  # a literal's value


def shown(text: str, limit: int = 64) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters (a path may be long)."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def syntax_error(field: str, message: str, position: int) -> InvalidRequestError:
    return InvalidRequestError(field, f"{message} at position {position}")


def tokenize(text: str, field: str, offset: int = 0) -> list[Token]:
    """The tokens of ``text`` followed by an END token; ``offset`` shifts positions (text
    cut from a longer string, as a template's ``{{ ... }}``)."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        position = offset + i + 1
        if char in " \t\r\n":
            i += 1
            continue
        token, i = _next_token(text, i, field, position)
        tokens.append(token)
    tokens.append(Token(Kind.END, "", offset + len(text) + 1))
    return tokens


def _next_token(text: str, i: int, field: str, position: int) -> tuple[Token, int]:
    char = text[i]
    if char in "\"'":
        end = _string_end(text, i, field, position)
        return Token(Kind.LITERAL, text[i:end], position, _string_value(text[i:end])), end
    number = _NUMBER.match(text, i)
    if number is not None and (char.isdigit() or char == "-"):
        raw = number.group()
        if len(raw) > MAX_NUMBER_LENGTH:
            raise syntax_error(field, "number too long", position)
        value: object = float(raw) if any(c in raw for c in ".eE") else int(raw)
        if value in (float("inf"), float("-inf")):  # 1e999: JSON has no infinity
            raise syntax_error(field, "number out of range", position)
        return Token(Kind.LITERAL, raw, position, value), number.end()
    path = _PATH.match(text, i)
    if path is not None:
        word = path.group()
        if word in LITERAL_WORDS:
            return Token(Kind.LITERAL, word, position, LITERAL_WORDS[word]), path.end()
        kind = Kind.KEYWORD if word in KEYWORDS else Kind.PATH
        return Token(kind, word, position), path.end()
    for punct in _PUNCTUATION:
        if text.startswith(punct, i):
            return Token(Kind.PUNCT, punct, position), i + len(punct)
    raise syntax_error(field, f"unexpected character {char!r}", position)


def _string_end(text: str, start: int, field: str, position: int) -> int:
    """Index after the closing quote of the string starting at ``start``."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "\\\"'nt":
                raise syntax_error(field, "invalid escape in string", offset_of(position, start, i))
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    raise syntax_error(field, "unterminated string", position)


def offset_of(position: int, start: int, i: int) -> int:
    return position + (i - start)


_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


def _string_value(raw: str) -> str:
    body = raw[1:-1]
    if "\\" not in body:
        return body
    return re.sub(r"\\(.)", lambda m: _ESCAPES[m.group(1)], body)
