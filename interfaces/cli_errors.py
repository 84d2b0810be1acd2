"""Errors of the `duecall` command line: one sentence on stderr and exit code 1, never a
traceback (`duecall --debug <command>` prints the traceback first).

Commands raise ``CliError("one sentence")`` (``ApiError`` when the API refused); anything else
they let escape is put into words here too. It is handled once, by the root command group
(``DuecallGroup``), for every command and sub-command.
"""

import sys
import traceback
from typing import Any

import typer
import typer.core
from rich.console import Console
from rich.text import Text

from domain.errors import DomainError
from infrastructure.database import DATABASE_UNAVAILABLE
from infrastructure.database_errors import sqlstate, unreachable

err_console = Console(stderr=True)


class CliError(Exception):
    """A failure the user can act on; its message is one sentence."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ApiError(CliError):
    """The API answered with an error (an RFC 9457 problem, as a dict)."""

    def __init__(self, message: str, status: int, problem: dict[str, Any]) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem

    @property
    def fields(self) -> list[tuple[str, str]]:
        """(field, message) of each validation error the problem names."""
        return problem_fields(self.problem)


def problem_fields(problem: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) of each entry of a problem's ``errors``."""
    errors = problem.get("errors")
    return [(str(e.get("field", "")), str(e.get("message", "")))
            for e in (errors if isinstance(errors, list) else []) if isinstance(e, dict)]


def sentence(error: BaseException) -> str:
    """What to tell the user about ``error``: one sentence, no traceback."""
    if isinstance(error, CliError | DomainError):
        return str(error)
    if isinstance(error, DATABASE_UNAVAILABLE) and unreachable(error):
        return f"cannot reach the database ({_first_line(error)}): is it running, is " \
               "DATABASE_URL right?"
    state = sqlstate(error)
    if state is not None:  # the database answered, and refused
        return f"the database refused a statement (SQLSTATE {state}): {_first_line(error)}"
    return (f"unexpected {type(error).__name__}: {error} "
            "(run `duecall --debug ...` to see the traceback)")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def fail(error: BaseException, debug: bool) -> None:
    """Report ``error`` on stderr (its traceback first with ``debug``) and exit non-zero."""
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    err_console.print(Text.assemble(("error: ", "bold red"), sentence(error)), soft_wrap=True)
    raise typer.Exit(error.exit_code if isinstance(error, CliError) else 1)


class DuecallGroup(typer.core.TyperGroup):
    """The root group: every error of every command goes through ``fail``."""

    def invoke(self, ctx: Any) -> Any:  # a typer (click) Context
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer's own: usage errors, --help, typer.Exit
        except Exception as error:
            fail(error, debug=bool(ctx.params.get("debug")))
