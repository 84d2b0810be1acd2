"""Templates in a step's request: ``{{ look-up | function }}`` inside strings.

    template   := (text | "{{" value ("|" function)* "}}")*
    value      := path | literal          (input.key, steps.auth.outputs.token, run.id, "x")
    function   := "default" "(" literal ")" | "upper" | "lower" | "urlencode" | "json"
                | "base64"

A tiny parser of our own: no code execution, no attribute access, no loops; the functions
are pure, so a replay renders the same request from the same recorded values. A look-up
that finds nothing is an error unless ``default`` gives a value. In text a value is written
as JSON would write it (``true``, ``3``, ``{"a":1}``), a string as itself and null as
nothing. In a JSON body, a string that is exactly one ``{{ ... }}`` takes the value itself
(a number stays a number). ``}}`` cannot appear inside a ``{{ ... }}``; write a literal
``{{`` as ``{{ "{{" }}``.
"""

import base64
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from domain.errors import InvalidRequestError
from domain.text import check_text, text_problem
from domain.workflow_expressions import Literal, Path
from domain.workflow_paths import MISSING, Reveal, Scope, Unavailable, check_path, resolve
from domain.workflow_tokens import Kind, Token, shown, syntax_error, tokenize

MAX_TEMPLATE_LENGTH = 1024 * 1024  # characters in one string, or a JSON value's strings
MAX_LOOKUPS = 100  # {{ ... }} in one string
MAX_JSON_DEPTH = 32
MAX_JSON_NODES = 10_000
MAX_KEY_LENGTH = 256
FUNCTIONS = {"default": 1, "upper": 0, "lower": 0, "urlencode": 0, "json": 0, "base64": 0}


@dataclass(frozen=True)
class Function:
    name: str
    argument: object = None


@dataclass(frozen=True)
class Lookup:
    value: Literal | Path
    functions: tuple[Function, ...]
    position: int

    @property
    def text(self) -> str:
        if isinstance(self.value, Path):
            return ".".join(self.value.segments)
        return json.dumps(self.value.value)


@dataclass(frozen=True)
class Template:
    text: str
    field: str
    parts: tuple[str | Lookup, ...]

    @property
    def is_literal(self) -> bool:
        return all(isinstance(part, str) for part in self.parts)


# a JSON value whose strings are templates (a request body given as JSON)
JsonTemplate = (
    Template | dict[str, "JsonTemplate"] | list["JsonTemplate"] | int | float | bool | None
)


def parse_template(text: str, field: str, scope: Scope) -> Template:
    """The parsed template, or ``InvalidRequestError`` naming ``field`` and a position."""
    if len(text) > MAX_TEMPLATE_LENGTH:
        raise InvalidRequestError(field, f"at most {MAX_TEMPLATE_LENGTH} characters")
    check_text(field, text)
    parts: list[str | Lookup] = []
    i = 0
    while (start := text.find("{{", i)) >= 0:
        end = text.find("}}", start + 2)
        if end < 0:
            raise syntax_error(field, "'{{' is not closed by '}}'", start + 1)
        if sum(isinstance(part, Lookup) for part in parts) >= MAX_LOOKUPS:
            raise InvalidRequestError(field, f"at most {MAX_LOOKUPS} {{{{ ... }}}} in one string")
        if start > i:
            parts.append(text[i:start])
        parts.append(_lookup(text[start + 2 : end], field, start + 2, scope))
        i = end + 2
    if i < len(text) or not parts:
        parts.append(text[i:])
    return Template(text, field, tuple(parts))


def parse_json_template(value: object, field: str, scope: Scope) -> JsonTemplate:
    """A JSON value with its strings parsed as templates (a body, given as JSON)."""
    return _JsonParser(scope).parse(value, field, 0)


def check_json_value(value: object, field: str) -> None:
    """A plain JSON value (no templates: its strings are data), within the same bounds."""
    _JsonParser(None).parse(value, field, 0)


def render_text(
    template: Template, context: Mapping[str, object], reveal: Reveal | None = None
) -> str:
    """The template's text with every look-up replaced by its value's text; ``reveal``
    opens secret values (a secret header's only: elsewhere a secret is refused)."""
    field = template.field
    return "".join(
        part if isinstance(part, str) else _text(_evaluate(part, context, field, reveal), field)
        for part in template.parts
    )


def render_json(template: JsonTemplate, context: Mapping[str, object]) -> object:
    """The JSON value; a string that is exactly one look-up takes the value itself."""
    if isinstance(template, Template):
        if len(template.parts) == 1 and isinstance(template.parts[0], Lookup):
            return _evaluate(template.parts[0], context, template.field)
        return render_text(template, context)
    if isinstance(template, dict):
        return {key: render_json(value, context) for key, value in template.items()}
    if isinstance(template, list):
        return [render_json(value, context) for value in template]
    return template


def as_text(value: object) -> str:
    """A value written into text: a string as itself, null as nothing, the rest as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _text(value: object, field: str) -> str:
    """``as_text``, with a value that is not JSON refused naming the field."""
    if isinstance(value, str) or value is None:
        return as_text(value)
    return _json(value, field)


def _json(value: object, field: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or Infinity (Python's JSON parser reads them)
        raise InvalidRequestError(field, "a value is not JSON (NaN or Infinity)") from None


def _lookup(text: str, field: str, offset: int, scope: Scope) -> Lookup:
    tokens = tokenize(text, field, offset)
    first = tokens[0]
    if first.kind is Kind.LITERAL:
        value: Literal | Path = Literal(first.value)
    elif first.kind is Kind.PATH:
        value = Path(tuple(first.text.split(".")), first.position)
        check_path(value.segments, scope, field, first.position)
    else:
        raise _unexpected(field, first, "expected a name or a value")
    functions, i = [], 1
    while tokens[i].kind is not Kind.END:
        if tokens[i].text != "|" or tokens[i].kind is not Kind.PUNCT:
            raise _unexpected(field, tokens[i], "expected '|' or '}}'")
        function, i = _function(tokens, i + 1, field)
        functions.append(function)
    return Lookup(value, tuple(functions), first.position)


def _function(tokens: list[Token], i: int, field: str) -> tuple[Function, int]:
    name = tokens[i]
    if name.kind is not Kind.PATH or name.text not in FUNCTIONS:
        raise _unexpected(field, name, f"expected one of {', '.join(FUNCTIONS)}")
    if FUNCTIONS[name.text] == 0:
        return Function(name.text), i + 1
    opening, argument, closing = (tokens[i + 1 : i + 4] + [tokens[-1]] * 3)[:3]
    if (opening.text, opening.kind) != ("(", Kind.PUNCT):
        raise _unexpected(field, opening, f"expected '(' after {name.text}")
    if argument.kind is not Kind.LITERAL:
        raise _unexpected(field, argument, "expected a value (a string, number, true/false/null)")
    if (closing.text, closing.kind) != (")", Kind.PUNCT):
        raise _unexpected(field, closing, "expected ')'")
    return Function(name.text, argument.value), i + 4


def _unexpected(field: str, token: Token, hint: str) -> InvalidRequestError:
    what = "the end" if token.kind is Kind.END else shown(token.text)
    return syntax_error(field, f"unexpected {what} ({hint})", token.position)


def _evaluate(
    lookup: Lookup, context: Mapping[str, object], field: str, reveal: Reveal | None = None
) -> object:
    if isinstance(lookup.value, Literal):
        value = lookup.value.value
    else:
        value = resolve(context, lookup.value.segments, reveal)
    for function in lookup.functions:
        value = _apply(function, value, lookup, field)
    if isinstance(value, Unavailable):
        raise InvalidRequestError(field, f"{lookup.text}: {value.reason}")
    if value is MISSING:
        raise InvalidRequestError(
            field, f"{lookup.text} has no value (give one, or add | default(...))"
        )
    return value


def _apply(function: Function, value: object, lookup: Lookup, field: str) -> object:
    if isinstance(value, Unavailable):
        raise InvalidRequestError(field, f"{lookup.text}: {value.reason}")
    if function.name == "default":
        return function.argument if value is MISSING or value is None else value
    if value is MISSING:
        return MISSING  # reported after the functions: only default gives a value
    if function.name == "json":
        return _json(value, field)
    text = _text(value, field)
    problem = text_problem(text)
    if problem is not None:  # cannot be encoded (a lone surrogate) nor stored (NUL)
        raise InvalidRequestError(field, f"{lookup.text}: {problem}")
    if function.name == "upper":
        return text.upper()
    if function.name == "lower":
        return text.lower()
    if function.name == "urlencode":
        return quote(text, safe="")
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


class _JsonParser:
    """Parses a JSON body's strings as templates, bounding its depth and size."""

    def __init__(self, scope: Scope | None) -> None:
        self.scope = scope  # None: strings are data, not templates
        self.nodes = self.characters = 0

    def parse(self, value: object, field: str, depth: int) -> JsonTemplate:
        self.nodes += 1
        if self.nodes > MAX_JSON_NODES:
            raise InvalidRequestError(field, f"a JSON value holds at most {MAX_JSON_NODES} values")
        if depth > MAX_JSON_DEPTH:
            raise InvalidRequestError(field, f"nested deeper than {MAX_JSON_DEPTH}")
        if isinstance(value, str):
            self.count(len(value), field)
            if self.scope is not None:
                return parse_template(value, field, self.scope)
            check_text(field, value)
            return None
        if isinstance(value, Mapping):
            self.count(sum(len(key) for key in value if isinstance(key, str)), field)
            return {
                _key(key, field): self.parse(item, f"{field}.{key}", depth + 1)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.parse(item, f"{field}[{n}]", depth + 1) for n, item in enumerate(value)]
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
        raise InvalidRequestError(field, "must be a JSON value")

    def count(self, characters: int, field: str) -> None:
        self.characters += characters
        if self.characters > MAX_TEMPLATE_LENGTH:
            raise InvalidRequestError(
                field, f"a JSON value holds at most {MAX_TEMPLATE_LENGTH} characters of text"
            )


def _key(key: object, field: str) -> str:
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequestError(
            field, f"object keys must be strings of at most {MAX_KEY_LENGTH} characters"
        )
    check_text(field, key)
    return key
