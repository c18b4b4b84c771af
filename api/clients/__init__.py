"""Terminal clients of a server: the connection, the task view, ``watch``, terminal text.

The names drawn with rich (``data_table``, ``print_table``, ``status_view``...) are
imported on first use: a command that draws nothing must not load rich (start-up time,
bench/README.md section 7).
"""

from typing import TYPE_CHECKING

from .._defaults import DEFAULT_URL
from .._lazy_names import import_on_first_use
from ._connection import (
    Backoff,
    RuncastClient,
    check_url,
    fetch_tasks,
    open_client,
    websocket_url,
)
from ._exceptions import (
    EXIT_ERROR_REPLY,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    AuthRefusedError,
    ClientError,
    ErrorReplyError,
    ProtocolError,
    ServerUnreachableError,
)
from ._logs import LogLine, LogsRequest, read_logs
from ._money import format_usd
from ._terminal import MAX_DRAWN_ROWS, csv_cell, draws_table, json_text, printable, printable_lines
from ._view import TaskLine, format_session_line, format_task_table
from ._watch import Screen, can_redraw, watch

if TYPE_CHECKING:
    from ._rich_view import (
        data_table,
        print_table,
        render_text,
        shown,
        status_view,
        terminal_console,
    )

#: The rich-drawn names, imported from their module on first use.
_DRAWN: dict[str, str] = {
    name: "._rich_view"
    for name in (
        "data_table",
        "print_table",
        "render_text",
        "shown",
        "status_view",
        "terminal_console",
    )
}

__all__ = [
    "DEFAULT_URL",
    "EXIT_ERROR_REPLY",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "MAX_DRAWN_ROWS",
    "AuthRefusedError",
    "Backoff",
    "ClientError",
    "ErrorReplyError",
    "LogLine",
    "LogsRequest",
    "ProtocolError",
    "RuncastClient",
    "Screen",
    "ServerUnreachableError",
    "TaskLine",
    "can_redraw",
    "check_url",
    "csv_cell",
    "data_table",
    "draws_table",
    "fetch_tasks",
    "format_session_line",
    "format_task_table",
    "format_usd",
    "json_text",
    "open_client",
    "print_table",
    "printable",
    "printable_lines",
    "read_logs",
    "render_text",
    "shown",
    "status_view",
    "terminal_console",
    "watch",
    "websocket_url",
]

__getattr__, __dir__ = import_on_first_use(__name__, _DRAWN)
