"""Cron expressions: parsed once, matched against naive wall-clock times (calendar only).

Fields, in order: ``[second] minute hour day-of-month month day-of-week [year]``:

- 5 fields: standard cron (second 0);
- 6 fields: a leading seconds field;
- 7 fields: seconds, then the five, then a trailing year field (1970-2199: ``*``, numbers,
  ranges, lists, steps).

The first six are cronsim's (names, ranges, steps, ``L`` and ``LW`` in day-of-month, ``5L``
(last Friday) and ``MON#2`` in day-of-week, Debian's rule that day-of-month and day-of-week
are OR-ed unless one starts with ``*``); ``?`` is taken as ``*`` (Quartz), the ``@daily``
kind of macro is expanded, and the year is filtered here (cronsim has no year field).
Time zones and DST are not this module's: see ``domain.wall_clock``.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from cronsim import CronSim, CronSimError

from domain.errors import InvalidRequestError

FIELD = "spec.cron"
MAX_LENGTH = 200
MIN_YEAR, MAX_YEAR = 1970, 2199
# A calendar pattern (no year field) repeats every 28 years between 1901 and 2099: one with no
# match in 29 years has none at all.
HORIZON_YEARS = 29
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_YEAR_TERM = re.compile(r"(\*|\d{4}(?:-\d{4})?)(?:/(\d{1,3}))?")


@dataclass(frozen=True)
class CronExpression:
    """A valid expression: cronsim's six fields, and the years it may fire in (None: any)."""

    text: str
    six_fields: str
    years: frozenset[int] | None

    def walls(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """The naive wall-clock times that match, ascending, each > ``after`` and <= ``until``."""
        cursor = after
        while cursor < until:
            year = self._first_year_from(cursor.year)
            if year is None:
                return
            if year > cursor.year:  # jump to the first second of the next allowed year
                cursor = datetime(year, 1, 1) - timedelta(seconds=1)
            for wall in _matches(self.six_fields, cursor):
                if wall > until:
                    return
                if self.years is None or wall.year in self.years:
                    yield wall
                    continue
                cursor = wall  # a year the expression leaves out: look for the next allowed
                break
            else:
                return

    def horizon(self, start: datetime) -> datetime:
        """How far from ``start`` a search for the next match goes before calling it never."""
        if self.years is None:
            return datetime(min(start.year + HORIZON_YEARS + 1, 9000), 1, 1)
        return datetime(max(*self.years, start.year) + 1, 1, 1)

    def _first_year_from(self, year: int) -> int | None:
        if self.years is None:
            return year
        later = [y for y in self.years if y >= year]
        return min(later) if later else None


def _matches(six_fields: str, after: datetime) -> Iterator[datetime]:
    """cronsim's matches after ``after`` (it gives up after 50 years without one)."""
    try:
        yield from CronSim(six_fields, after)
    except OverflowError:  # past year 9999
        return


def parse_cron(text: object) -> CronExpression:
    """The expression ``text`` names, or ``InvalidRequestError`` naming ``spec.cron``."""
    if not isinstance(text, str):
        raise InvalidRequestError(FIELD, "must be a string")
    return _parse(text)


@lru_cache(maxsize=4096)
def _parse(text: str) -> CronExpression:
    """Expressions are few and immutable: parse (and check) each distinct one once."""
    if len(text) > MAX_LENGTH:
        raise InvalidRequestError(FIELD, f"at most {MAX_LENGTH} characters ({len(text)} given)")
    if not _PRINTABLE_ASCII.fullmatch(text):
        raise InvalidRequestError(FIELD, "only printable ASCII characters (and spaces)")
    stripped = text.strip()
    parts = MACROS.get(stripped.lower(), stripped).split()
    if not 5 <= len(parts) <= 7:
        raise InvalidRequestError(
            FIELD,
            f"needs 5 to 7 fields ({len(parts)} given): [second] minute hour day-of-month "
            "month day-of-week [year]",
        )
    years = _parse_years(parts.pop()) if len(parts) == 7 else None
    if len(parts) == 6:
        parts[3], parts[5] = _question_mark(parts[3]), _question_mark(parts[5])
    else:
        parts[2], parts[4] = _question_mark(parts[2]), _question_mark(parts[4])
    six = " ".join(parts if len(parts) == 6 else ["0", *parts])
    _check_with_cronsim(six)
    return CronExpression(text=text, six_fields=six, years=years)


def _question_mark(field: str) -> str:
    return "*" if field == "?" else field


def _check_with_cronsim(six: str) -> None:
    try:
        CronSim(six, datetime(2000, 1, 1))
    except CronSimError as error:
        problem = str(error).lower()  # "bad day-of-month" names the cron field at fault
        if problem == "bad day-of-month" and _parses_with_any_month(six):
            raise InvalidRequestError(
                FIELD, "never fires: no month it names has that day of the month"
            ) from None
        raise InvalidRequestError(FIELD, f"{problem} field") from None
    except (ValueError, IndexError, TypeError):  # cronsim's own guard rails, should any slip
        raise InvalidRequestError(FIELD, "is not a valid cron expression") from None


def _parses_with_any_month(six: str) -> bool:
    second, minute, hour, dom, _month, dow = six.split()
    try:
        CronSim(" ".join([second, minute, hour, dom, "*", dow]), datetime(2000, 1, 1))
    except (CronSimError, ValueError, IndexError, TypeError):
        return False
    return True


def _parse_years(field: str) -> frozenset[int]:
    years: set[int] = set()
    for term in field.split(","):
        found = _YEAR_TERM.fullmatch(term)
        if found is None:
            raise InvalidRequestError(FIELD, f"bad year field {field!r}")
        span, step_text = found.groups()
        if span == "*":
            first, last = MIN_YEAR, MAX_YEAR
        else:
            first_text, _, last_text = span.partition("-")
            first = int(first_text)
            last = int(last_text) if last_text else (MAX_YEAR if step_text else first)
        step = int(step_text) if step_text else 1
        if not MIN_YEAR <= first <= last <= MAX_YEAR or step < 1:
            raise InvalidRequestError(
                FIELD, f"bad year field {field!r}: years {MIN_YEAR} to {MAX_YEAR}, ascending"
            )
        years.update(range(first, last + 1, step))
    return frozenset(years)
