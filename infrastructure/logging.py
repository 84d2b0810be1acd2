"""structlog set-up: JSON when not on a terminal (or when asked), key-values on a terminal.

No line shows a secret header value: every ``*headers`` mapping in a line is redacted (see
domain/redaction.py), and so is any sealed value.
"""

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from domain.redaction import redact_payload
from infrastructure.settings import Settings


def redact_secrets(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: the line with secret header values (and sealed values)
    redacted, wherever they are in it."""
    return redact_payload(event_dict)


def configure_logging(settings: Settings) -> None:
    json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            redact_secrets,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
