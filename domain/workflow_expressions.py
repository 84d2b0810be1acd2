"""``when`` and ``success`` expressions: a tiny safe grammar, parsed once into an AST.

    expression := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand [("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") operand]
    operand    := literal | path | "[" [operand ("," operand)*] "]" | "(" expression ")"

Literals are JSON numbers, quoted strings, true, false, null; paths are look-ups
(``workflow_paths``). No eval, no calls, no attribute access: evaluation only reads the
context. Semantics are JSON's, not Python's (``workflow_comparisons``): ``true != 1``, a
missing look-up is ``null``.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from domain.errors import InvalidRequestError
from domain.text import check_text
from domain.workflow_comparisons import compare, truthy
from domain.workflow_paths import MISSING, Scope, Unavailable, check_path, resolve
from domain.workflow_tokens import Kind, Token, shown, syntax_error, tokenize

MAX_EXPRESSION_LENGTH = 1024
MAX_DEPTH = 32  # nested parentheses, lists and nots
COMPARISONS = ("==", "!=", "<=", ">=", "<", ">", "in", "not in")


@dataclass(frozen=True)
class Literal:
    value: object


@dataclass(frozen=True)
class Path:
    segments: tuple[str, ...]
    position: int


@dataclass(frozen=True)
class ListOf:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Not:
    operand: "Node"


@dataclass(frozen=True)
class Logical:
    operator: str  # "and" | "or"
    left: "Node"
    right: "Node"


@dataclass(frozen=True)
class Compare:
    operator: str
    left: "Node"
    right: "Node"


Node = Literal | Path | ListOf | Not | Logical | Compare


@dataclass(frozen=True)
class Expression:
    text: str
    field: str
    root: Node

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(_paths(self.root))


def parse_expression(text: object, field: str, scope: Scope) -> Expression:
    """The parsed expression, or ``InvalidRequestError`` naming ``field`` and a position."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequestError(field, "must be a non-empty string (an expression)")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise InvalidRequestError(field, f"at most {MAX_EXPRESSION_LENGTH} characters")
    check_text(field, text)  # inside a string literal too
    parser = _Parser(tokenize(text, field), field)
    root = parser.expression(0)
    parser.expect_end()
    expression = Expression(text, field, root)
    for path in expression.paths:
        check_path(path.segments, scope, field, path.position)
    return expression


def evaluate(expression: Expression, context: Mapping[str, object]) -> bool:
    """Is the expression true in ``context``? Reading a value that may not be used (an
    output truncated when stored) raises ``InvalidRequestError`` naming the field."""
    return truthy(_value(expression.root, context, expression.field))


class _Parser:
    def __init__(self, tokens: list[Token], field: str) -> None:
        self.tokens, self.field, self.i = tokens, field, 0

    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at(self, text: str) -> bool:
        return self.token.kind in (Kind.KEYWORD, Kind.PUNCT) and self.token.text == text

    def expect(self, text: str) -> None:
        if not self.at(text):
            raise self.unexpected(f"expected {text!r}")
        self.take()

    def expect_end(self) -> None:
        if self.token.kind is not Kind.END:
            raise self.unexpected("expected the end")

    def unexpected(self, hint: str) -> InvalidRequestError:
        what = "the end" if self.token.kind is Kind.END else shown(self.token.text)
        return syntax_error(self.field, f"unexpected {what} ({hint})", self.token.position)

    def deeper(self, depth: int) -> int:
        if depth >= MAX_DEPTH:
            raise syntax_error(self.field, f"nested deeper than {MAX_DEPTH}", self.token.position)
        return depth + 1

    def expression(self, depth: int) -> Node:
        node = self.conjunction(depth)
        while self.at("or"):
            self.take()
            node = Logical("or", node, self.conjunction(depth))
        return node

    def conjunction(self, depth: int) -> Node:
        node = self.negation(depth)
        while self.at("and"):
            self.take()
            node = Logical("and", node, self.negation(depth))
        return node

    def negation(self, depth: int) -> Node:
        if self.at("not"):
            self.take()
            return Not(self.negation(self.deeper(depth)))
        return self.comparison(depth)

    def comparison(self, depth: int) -> Node:
        left = self.operand(depth)
        if self.at("not"):
            self.take()
            if not self.at("in"):
                raise self.unexpected("expected 'in' after 'not'")
            self.take()
            return Compare("not in", left, self.operand(depth))
        if self.at_comparison():
            operator = self.take().text
            node = Compare(operator, left, self.operand(depth))
            if self.at_comparison() or self.at("not"):
                raise self.unexpected("comparisons do not chain; use 'and'")
            return node
        return left

    def at_comparison(self) -> bool:
        return any(self.at(text) for text in COMPARISONS)

    def operand(self, depth: int) -> Node:
        token = self.token
        if token.kind is Kind.LITERAL:
            return Literal(self.take().value)
        if token.kind is Kind.PATH:
            return Path(tuple(self.take().text.split(".")), token.position)
        if self.at("("):
            self.take()
            node = self.expression(self.deeper(depth))
            self.expect(")")
            return node
        if self.at("["):
            return self.list_of(self.deeper(depth))
        raise self.unexpected("expected a value, a name or '('")

    def list_of(self, depth: int) -> Node:
        self.take()
        items: list[Node] = []
        while not self.at("]"):
            if items:
                self.expect(",")
            items.append(self.operand(depth))
        self.take()
        return ListOf(tuple(items))


def _paths(node: Node) -> list[Path]:
    if isinstance(node, Path):
        return [node]
    if isinstance(node, ListOf):
        return [path for item in node.items for path in _paths(item)]
    if isinstance(node, Not):
        return _paths(node.operand)
    if isinstance(node, Logical | Compare):
        return _paths(node.left) + _paths(node.right)
    return []


def _value(node: Node, context: Mapping[str, object], field: str) -> object:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Path):
        value = resolve(context, node.segments)
        if isinstance(value, Unavailable):
            raise InvalidRequestError(field, f"{'.'.join(node.segments)}: {value.reason}")
        return None if value is MISSING else value
    if isinstance(node, ListOf):
        return [_value(item, context, field) for item in node.items]
    if isinstance(node, Not):
        return not truthy(_value(node.operand, context, field))
    if isinstance(node, Logical):
        left = truthy(_value(node.left, context, field))
        if left == (node.operator == "or"):  # short circuit
            return left
        return truthy(_value(node.right, context, field))
    return compare(
        node.operator, _value(node.left, context, field), _value(node.right, context, field)
    )
