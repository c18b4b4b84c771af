"""Terminal clients of a server: the connection, the task view, ``watch``, terminal text."""

from .._defaults import DEFAULT_URL
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
from ._terminal import csv_cell, json_text, printable, printable_lines
from ._view import TaskLine, format_session_line, format_task_table
from ._watch import Screen, watch

__all__ = [
    "DEFAULT_URL",
    "EXIT_ERROR_REPLY",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
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
    "check_url",
    "csv_cell",
    "fetch_tasks",
    "format_session_line",
    "format_task_table",
    "format_usd",
    "json_text",
    "open_client",
    "printable",
    "printable_lines",
    "read_logs",
    "watch",
    "websocket_url",
]
