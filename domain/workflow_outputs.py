"""A step's outputs: RFC 9535 JSONPath queries over its response, and how they are stored.

The document queried is ``{"status": 201, "headers": {lower-cased name: value}, "body":
<JSON body, or the text>}``. A singular query (``$.body.id``) gives its value or null; any
other (``$.body.items[*].id``) gives the list of the values it selects.

Library: ``jsonpath-rfc9535`` (James Prior). It implements exactly RFC 9535 and nothing
else (it is tested against the JSONPath Compliance Test Suite), is pure Python with type
hints, and is maintained; ``python-jsonpath`` by the same author adds non-standard syntax
we would then have to forbid, ``jsonpath-ng`` predates the RFC and differs from it. The
``match`` and ``search`` function extensions are not offered: a tenant's regular expression
run over a response body can backtrack for a very long time. For the same reason a query
holds at most one ``..`` (each nests a walk of the whole response) and selects at most
``MAX_SELECTED`` values.

Storage: a step's outputs take at most ``MAX_OUTPUT_BYTES`` together (compact UTF-8 JSON),
in the order they are declared. One that does not fit is kept truncated (its JSON text cut
to what is left) with the size and SHA-256 of its whole value; it cannot be used in a
template or expression (a truncated value would be sent as if whole). A secret output is
stored as its JSON text sealed (``workflow_secret_values``), whole or not at all.
"""

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from jsonpath_rfc9535 import JSONPathEnvironment, JSONPathError, JSONPathQuery

from domain.errors import InvalidRequestError
from domain.text import text_problem
from domain.workflow_paths import Sealed, Unavailable

MAX_OUTPUT_BYTES = 256 * 1024
MAX_QUERY_LENGTH = 512
MAX_DESCENTS = 1  # '..' in a query: each nests a walk of the whole response in the last
MAX_SELECTED = 10_000  # values one query may select


class _Environment(JSONPathEnvironment):
    """RFC 9535 without the regular-expression functions (``match``, ``search``)."""

    def setup_function_extensions(self) -> None:
        super().setup_function_extensions()
        for name in ("match", "search"):
            del self.function_extensions[name]


_ENVIRONMENT = _Environment()


@dataclass(frozen=True)
class StoredOutput:
    value: object  # the whole value; when not usable, the part kept (text) or None
    size_bytes: int  # of the whole value, as compact UTF-8 JSON (a secret's: sealed)
    sha256: str  # of the same ("" for a secret: a short one's hash could be guessed back)
    unusable: str | None = None  # why it cannot be used (truncated, unstorable)
    secret: bool = False  # value: its JSON text sealed (None when unusable: nothing kept)

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "unusable": self.unusable,
            "secret": self.secret,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "StoredOutput":
        return cls(
            values["value"],
            values["size_bytes"],
            values["sha256"],
            values["unusable"],
            values.get("secret", False),  # recorded before secret outputs: none was
        )


def compile_query(query: object, field: str) -> JSONPathQuery:
    """The compiled query, or ``InvalidRequestError`` naming ``field``."""
    if not isinstance(query, str) or not query:
        raise InvalidRequestError(field, "must be a JSONPath query (a string starting with $)")
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidRequestError(field, f"at most {MAX_QUERY_LENGTH} characters")
    problem = text_problem(query)
    if problem is not None:
        raise InvalidRequestError(field, problem)
    if query.count("..") > MAX_DESCENTS:  # counted in names too: a refusal, never a miss
        raise InvalidRequestError(field, f"at most {MAX_DESCENTS} '..' (descendants) a query")
    try:
        return _ENVIRONMENT.compile(query)
    except JSONPathError as error:
        raise InvalidRequestError(field, f"invalid JSONPath: {error}") from None
    except RecursionError:  # nested too deep for the library's recursive parser
        raise InvalidRequestError(field, "invalid JSONPath: nested too deep") from None


def response_document(status: int, headers: Mapping[str, str], body: object) -> dict[str, Any]:
    """What output queries and ``success`` read: header names lower-cased."""
    return {
        "status": status,
        "headers": {name.lower(): value for name, value in headers.items()},
        "body": body,
    }


def extract_outputs(
    queries: Mapping[str, JSONPathQuery], document: Mapping[str, Any], field: str = "outputs"
) -> dict[str, object]:
    """Each output's value in ``document``; a query the document defeats (a recursive
    descent deeper than the library allows, more than ``MAX_SELECTED`` values) raises
    ``InvalidRequestError``. The caller bounds the size of the body it parses."""
    values: dict[str, object] = {}
    for name, query in queries.items():
        try:  # the library selects lazily: stop past the limit
            nodes = list(islice(query.finditer(dict(document)), MAX_SELECTED + 1))
        except (JSONPathError, RecursionError) as error:
            raise InvalidRequestError(f"{field}.{name}", f"cannot be read: {error}") from None
        if len(nodes) > MAX_SELECTED:
            raise InvalidRequestError(f"{field}.{name}", f"selects more than {MAX_SELECTED} values")
        found = [node.value for node in nodes]
        values[name] = (found[0] if found else None) if query.singular_query() else found
    return values


def stored_outputs(
    values: Mapping[str, object],
    max_bytes: int = MAX_OUTPUT_BYTES,
    secret: frozenset[str] = frozenset(),
    seal: Callable[[str], str] | None = None,
) -> dict[str, StoredOutput]:
    """The outputs as stored: whole while they fit in ``max_bytes`` together, in order;
    those named in ``secret`` sealed by ``seal`` (their sealed text counts)."""
    left = max_bytes
    stored: dict[str, StoredOutput] = {}
    for name, value in values.items():
        text, problem = _json_text(value)
        if name in secret:
            assert seal is not None, "secret outputs need a seal"
            stored[name] = _sealed_output(text, problem, left, max_bytes, seal)
            left -= stored[name].size_bytes if stored[name].unusable is None else 0
            continue
        data = text.encode("utf-8", errors="surrogatepass")
        digest = hashlib.sha256(data).hexdigest()
        if problem is not None:
            stored[name] = StoredOutput(None, len(data), digest, f"cannot be stored: {problem}")
        elif len(data) <= left:
            stored[name] = StoredOutput(value, len(data), digest)
            left -= len(data)
        else:
            kept = data[:left].decode("utf-8", errors="ignore")  # cut on a character boundary
            left -= len(kept.encode("utf-8"))
            note = f"truncated: {len(data)} bytes, over the {max_bytes} bytes a step's outputs keep"
            stored[name] = StoredOutput(kept, len(data), digest, note)
    return stored


def _sealed_output(
    text: str, problem: str | None, left: int, max_bytes: int, seal: Callable[[str], str]
) -> StoredOutput:
    """A secret output: its JSON text sealed; nothing of it kept when it cannot be
    stored or does not fit (a truncated part would be stored in clear)."""
    if problem is not None:
        return StoredOutput(None, 0, "", f"cannot be stored: {problem}", secret=True)
    sealed = seal(text)
    if len(sealed) > left:
        note = f"too large: {len(sealed)} bytes sealed, over the {max_bytes} bytes kept"
        return StoredOutput(None, len(sealed), "", note, secret=True)
    return StoredOutput(sealed, len(sealed), "", secret=True)


def _json_text(value: object) -> tuple[str, str | None]:
    """Compact JSON, and why it cannot be stored (jsonb holds no NUL, no NaN), if so."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or Infinity (Python's JSON parser reads them)
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return text, "not JSON (NaN or Infinity)"
    return text, _strings_problem(value)


def _strings_problem(value: object) -> str | None:
    """Why a string (or key) in ``value`` cannot be stored, if one cannot (NUL: jsonb
    refuses even its ``\\u0000`` escape)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return problem
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def usable_outputs(stored: Mapping[str, StoredOutput]) -> dict[str, object]:
    """The values templates and expressions read: ``Unavailable`` for the unusable ones."""
    return {name: _usable(output) for name, output in stored.items()}


def _usable(output: StoredOutput) -> object:
    if output.unusable is not None:
        return Unavailable(output.unusable)
    if output.secret and isinstance(output.value, str):
        return Sealed(output.value)  # only a secret header's template opens it
    return output.value
