"""structlog set-up, done once by the command-line entry point (never at import).

structlog itself is imported by the set-up, not by this module: the client
commands, which log nothing, parse ``--log-level`` without loading it.
"""

from __future__ import annotations

import io
import logging
import sys
from typing import TYPE_CHECKING, TextIO

from ..clients import printable, printable_lines

if TYPE_CHECKING:
    import structlog
    from structlog.typing import EventDict, ExcInfo, WrappedLogger

LEVELS = ("debug", "info", "warning", "error")
# Keys whose text the console renderer writes on lines of their own, below the entry.
_MULTILINE_KEYS = ("exception", "stack")


def configure_logging(*, json: bool, level: str = "info", stream: TextIO | None = None) -> None:
    """Log to stderr: console lines (coloured on a terminal), or JSON lines with ``json``.

    Logs go to stderr so stdout carries only what a command prints (the summary).
    """
    import structlog

    out = sys.stderr if stream is None else stream
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json:
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=escaped_traceback
        )
        processors += [escape_for_console, renderer]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def escape_for_console(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Escape the text of a log entry before the console renderer writes it raw.

    Log entries carry task ids, peers' commands and error messages; the console
    renderer prints ``str`` values (and the event) as they are. Other values are
    rendered with ``repr``, which escapes them already; JSON lines need nothing.
    """
    for key, value in event_dict.items():
        if isinstance(value, str):
            escape = printable_lines if key in _MULTILINE_KEYS else printable
            event_dict[key] = escape(value)
    return event_dict


def escaped_traceback(sio: TextIO, exc_info: ExcInfo) -> None:
    """structlog's plain traceback, each line escaped (exception messages quote input)."""
    import structlog

    buffer = io.StringIO()
    structlog.dev.plain_traceback(buffer, exc_info)
    sio.write(printable_lines(buffer.getvalue()))
