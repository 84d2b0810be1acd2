"""What kind of database error an exception is: the database away, or a statement refused.

eventsourcing re-raises psycopg's errors as its own (``OperationalError`` and so on) with the
psycopg error as the cause, and psycopg files some data errors under ``OperationalError`` too
(an index row too large is SQLSTATE 54000). So the class says little; the SQLSTATE of the
psycopg error in the chain says what happened.
"""

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError
from psycopg_pool import PoolTimeout

# SQLSTATE classes of a statement refused for the values it carries: data exception (22),
# integrity constraint violation (23), program limit exceeded (54: an index row too large).
DATA_CLASSES = frozenset({"22", "23", "54"})
# SQLSTATEs of a database that is away: connection exceptions (08...), shutting down or not
# yet accepting connections (57P01-57P03), too many connections (53300).
_AWAY = ("08", "57P01", "57P02", "57P03", "53300")
_CONNECTION_ERRORS = (
    psycopg.OperationalError, psycopg.InterfaceError, OperationalError, InterfaceError,
)


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(seen) < 10:  # a chain, not a cycle
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of the first psycopg error in ``error``'s chain (None if it has none)."""
    for link in _chain(error):
        if isinstance(link, psycopg.Error) and link.sqlstate:
            return link.sqlstate
    return None


def unreachable(error: BaseException) -> bool:
    """The database is away or the connection broke (not: it refused a statement)."""
    if any(isinstance(link, PoolTimeout) for link in _chain(error)):
        return True
    state = sqlstate(error)
    if state is None:  # no answer from a server: the connection itself failed
        return any(isinstance(link, _CONNECTION_ERRORS) for link in _chain(error))
    return state.startswith(_AWAY)


def about_the_data(error: BaseException) -> bool:
    """The database refused a statement for the values it carries."""
    state = sqlstate(error)
    return state is not None and state[:2] in DATA_CLASSES
