"""The domain's text rules as JSON Schema patterns, so that the OpenAPI document admits what
the API accepts and no more (schemathesis holds it to that). Each names the rule it copies;
tests/unit/test_openapi_matches_validation.py checks that they agree.

They are ECMA-262 regexes that Python's ``re`` and Rust's ``regex`` (pydantic, jsonschema_rs)
read alike: no inline flags, so a case-insensitive word is spelt ``[gG][eE][tT]``.
"""

from domain.headers import FRAMING, OWN, OWN_PREFIX
from domain.request import METHODS


def any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


def _one_of(*alternatives: str) -> str:
    return f"^(?:{'|'.join(alternatives)})$"


# RequestSpec: the method is upper-cased, then one of METHODS
METHOD = _one_of(*map(any_case, sorted(METHODS)))
# domain.headers.TOKEN: an RFC 9110 token
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
# domain.headers.is_reserved: framing headers and duecall's own, any case
RESERVED_HEADER = _one_of(*map(any_case, sorted(FRAMING | OWN)), any_case(OWN_PREFIX) + ".*")
# domain.headers._VALUE: tabs, visible ASCII, space and obs-text (Latin-1)
HEADER_VALUE = r"^[\t\x20-\x7e\x80-\xff]*$"
# RetryPolicy._valid_token (after lower-casing): an error kind, a status code or a class
RETRY_ON = _one_of(
    *map(any_case, ("timeout", "network", "lost", "rejected", "circuit_open")),
    "[1-5][0-9][0-9]", "[1-5]" + any_case("xx"),
)
# domain.request._check_url: an http(s) URL naming a host, no user:password@, a port of
# 0-65535 if any, no whitespace or control characters (Python's str.isspace) anywhere. An
# IPv6 literal ([2001:db8::1]) is left out: the domain takes a valid one (and fails on others).
_NOT_SPACE = r"\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_PORT = r"0*(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
URL = (
    f"^{any_case('http')}[sS]?://[^{_NOT_SPACE}/?#@:\\[\\]]+(?::(?:{_PORT})?)?"
    f"(?:[/?#][^{_NOT_SPACE}]*)?$"
)
# domain.tenant.check_tenant_name
TENANT_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
# domain.workflow_definition.NAME: a workflow definition's (and a stored one's) name
WORKFLOW_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
