"""``runcast logs TASK_ID``: a task's output, from a running server or from the store.

From a server: the lines it keeps (``GET /api/tasks/ID/output``), then with
``--follow`` the live ones (a WebSocket subscription to the task) until it ends.
With ``--store``: the ``task_output`` events of the store's history, after the run.
Lines are written as the task wrote them, in order; on a terminal, control
characters are escaped so a task cannot drive it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

import trio

from ..clients import EXIT_OK, LogLine, LogsRequest, printable, read_logs
from ._client_commands import (
    DEFAULT_TIMEOUT,
    _add_common,
    _add_parser,
    _bounded,
    _exit_with,
    _seconds,
    _token,
)

MAX_TAIL = 1_000_000


def _tail_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_TAIL:
        raise argparse.ArgumentTypeError(f"expected a number of lines from 1 to {MAX_TAIL:,}")
    return int(text)


def register(commands: Any) -> None:
    parser = _add_parser(
        commands,
        "logs",
        "print a task's output (live with --follow, or from the store)",
        "Print the output lines of one task, in order, as the task wrote them. From a "
        "running server: the lines it still keeps, then with --follow the new ones until "
        "the task ends. With --store: the lines recorded in the store's event history. "
        "Lines the server or the store no longer keeps are counted on stderr.",
    )
    parser.add_argument("task_id", metavar="TASK_ID", help="the id of the task")
    _add_common(parser)
    parser.add_argument(
        "--follow", "-f", action="store_true", help="keep printing new lines until the task ends"
    )
    parser.add_argument(
        "--tail", type=_tail_count, metavar="N", help="only the newest N lines kept"
    )
    parser.add_argument(
        "--stream", choices=("stdout", "stderr"), help="only the lines of this stream"
    )
    parser.add_argument(
        "--timestamps", action="store_true", help="start each line with the time it was read"
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        help=f"without --follow, give up after this many seconds (default: {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--store", metavar="PATH", help="read the task's output from this store instead"
    )
    parser.add_argument(
        "--session",
        metavar="ID",
        help="with --store: the session (id or unique prefix; default: the newest with the task)",
    )
    parser.set_defaults(handler=_run_logs)


class _Printer:
    """Writes lines to ``out``: raw when piped, escaped on a terminal."""

    def __init__(self, out: TextIO, *, timestamps: bool, flush: bool) -> None:
        self.out = out
        self.timestamps = timestamps
        self.flush = flush
        self.escape = out.isatty()

    def __call__(self, line: LogLine) -> None:
        text = printable(line.text) if self.escape else line.text
        self.out.write(f"{line.time} {text}\n" if self.timestamps else f"{text}\n")
        if self.flush:
            self.out.flush()


def _note(text: str) -> None:
    print(f"runcast logs: {printable(text)}", file=sys.stderr, flush=True)


def _run_logs(args: argparse.Namespace) -> int:
    if args.store is None and args.session is not None:
        return _usage_error("--session needs --store")
    if args.store is not None and args.follow:
        return _usage_error("--follow reads a running server; it cannot be used with --store")
    emit = _Printer(sys.stdout, timestamps=args.timestamps, flush=args.follow)
    if args.store is not None:
        # Imported here: the store is not loaded for a server's logs (start-up time).
        from ._logs_store import print_from_store

        return print_from_store(args, emit, _note)
    request = LogsRequest(
        args.task_id, token=_token(args), tail=args.tail, stream=args.stream, follow=args.follow
    )

    def run() -> int:
        if args.follow:
            trio.run(read_logs, args.url, request, emit, _note)
        else:
            trio.run(_bounded, args.timeout, args.url, read_logs, args.url, request, emit, _note)
        return EXIT_OK

    return _exit_with(args, run)


def _usage_error(text: str) -> int:
    print(f"runcast logs: error: {text}", file=sys.stderr)
    return 2
