"""The ``runcast`` client commands: watch, status, pause, resume, cancel, retry, budget set,
concurrency set.

``register(subcommands)`` adds them to the ``runcast`` parser; each sets
``args.handler(args) -> int`` (the exit code).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import textwrap
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

import trio

from ..clients import (
    DEFAULT_URL,
    EXIT_ERROR_REPLY,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    ClientError,
    Screen,
    ServerUnreachableError,
    TaskLine,
    can_redraw,
    draws_table,
    fetch_tasks,
    format_session_line,
    format_task_table,
    format_usd,
    json_text,
    open_client,
    printable,
    watch,
    websocket_url,
)
from ._exits import EXIT_INTERRUPTED, consists_of
from ._help import ArgumentParser, HelpFormatter

TOKEN_ENV = "RUNCAST_TOKEN"
SERVER_TOKEN_ENV = "RUNCAST_AUTH_TOKEN"
#: ``executor.MAX_CONCURRENCY``, here so a client command imports no executor (a test
#: holds them equal).
MAX_CONCURRENCY = 10_000
DEFAULT_TIMEOUT = 10.0
# The help keeps the exit-code table as written, so descriptions are wrapped by hand.
DESCRIPTION_WIDTH = 78

T = TypeVar("T")

EXIT_CODES_HELP = f"""\
exit codes:
  {EXIT_OK}  success
  {EXIT_ERROR_REPLY}  the server answered with an error (or something unexpected)
  2  bad command-line arguments
  {EXIT_UNREACHABLE}  the server is unreachable (nothing listening, timed out, connection lost)
  {EXIT_REFUSED}  the server refused the token (HTTP 401/403)
"""


# -- one-shot commands ------------------------------------------------------


async def fetch_status(url: str, token: str | None) -> dict[str, Any]:
    """The session snapshot (over the WebSocket) and the task rows (over HTTP)."""
    async with open_client(url, token=token) as client:
        session = await client.session_snapshot()
    return {"session": session, "tasks": await fetch_tasks(url, token)}


def _session_duration(session: dict[str, Any]) -> float:
    duration = session.get("duration_seconds", 0)
    return float(duration) if _is_number(duration) else 0.0


def render_status(status: dict[str, Any], now: datetime | None = None) -> list[str]:
    """``status``'s lines, escaped: ids, names and errors are the server's text."""
    session = status["session"]
    lines = [format_session_line(session, _session_duration(session))]
    rows = [TaskLine.from_api(row) for row in status["tasks"]]
    lines.append("")
    lines.extend(format_task_table(rows, now) if rows else ["no tasks"])
    return [printable(line) for line in lines]


def write_status(status: dict[str, Any], out: TextIO, now: datetime | None = None) -> None:
    """``status`` as a table drawn with rich on a terminal; piped (or too long to
    draw quickly), the plain lines of :func:`render_status`: scripts read those, so
    they keep their columns."""
    if not draws_table(out, len(status["tasks"])):
        out.write("\n".join(render_status(status, now)) + "\n")
        return
    # Imported only here: rich costs start-up time that a piped status does not pay.
    from ..clients import status_view, terminal_console

    session = status["session"]
    rows = [TaskLine.from_api(row) for row in status["tasks"]]
    view = status_view(session, _session_duration(session), rows, now or datetime.now(UTC))
    terminal_console(out).print(view)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


async def send_command(
    url: str, token: str | None, action: str, *, task_id: str = "*", data: dict[str, Any] | None
) -> dict[str, Any]:
    async with open_client(url, token=token) as client:
        return await client.command(action, task_id=task_id, data=data)


def describe_result(reply: dict[str, Any]) -> str:
    action = reply.get("action", "?")
    task_id = reply.get("task_id")
    target = f" {task_id}" if isinstance(task_id, str) and task_id != "*" else ""
    return printable(f"{action}{target}: {reply.get('status', '?')}")


# -- argparse wiring --------------------------------------------------------


def _budget_amount(text: str) -> float | None:
    if text.lower() in ("none", "off"):
        return None
    try:
        amount = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"USD must be a number or 'none', got {text!r}") from None
    if not math.isfinite(amount) or amount < 0:
        raise argparse.ArgumentTypeError(f"USD must be a finite number >= 0, got {text!r}")
    return amount


def _websocket_url(text: str) -> str:
    """A URL argument as the WebSocket URL it names (``http://HOST:PORT/`` and
    ``HOST:PORT`` too); refused by argparse (exit 2, with the usage) when it is none."""
    try:
        return websocket_url(text)
    except ClientError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url",
        nargs="?",
        type=_websocket_url,
        default=DEFAULT_URL,
        metavar="URL",
        help=f"the server's WebSocket URL (default: {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        default=None,
        help=f"the access token (default: ${TOKEN_ENV}, else ${SERVER_TOKEN_ENV}); "
        "sent as 'Authorization: Bearer'",
    )


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"seconds must be a finite number > 0, got {text!r}")
    return seconds


def _add_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        help=f"give up after this many seconds (default: {DEFAULT_TIMEOUT:g})",
    )


def _add_parser(subcommands: Any, name: str, help_text: str, description: str) -> Any:
    return subcommands.add_parser(
        name,
        help=help_text,
        description=textwrap.fill(description, DESCRIPTION_WIDTH),
        epilog=EXIT_CODES_HELP,
        formatter_class=HelpFormatter,
    )


def _register_views(subcommands: Any) -> None:
    watch_parser = _add_parser(
        subcommands,
        "watch",
        "live terminal view of a running server",
        "Show the session (duration, tokens, cost, task counts, paused, budget) and the "
        "running tasks, live. Redraws in place on a terminal, prints lines when piped. "
        "After the first connection it reconnects forever, with backoff, and says so.",
    )
    _add_common(watch_parser)
    watch_parser.set_defaults(handler=_run_watch)

    status_parser = _add_parser(
        subcommands,
        "status",
        "print one snapshot of the session and its tasks",
        "Print the session line and the task table once, or JSON with --json.",
    )
    _add_common(status_parser)
    _add_timeout(status_parser)
    status_parser.add_argument(
        "--json",
        action="store_true",
        help='print {"session": {...}, "tasks": [...]} as JSON',
    )
    status_parser.set_defaults(handler=_run_status)


def _register_controls(subcommands: Any) -> None:
    for action, text in (("pause", "pause the executor"), ("resume", "resume the executor")):
        parser = _add_parser(
            subcommands, action, text, f"{text.capitalize()} (needs an operator token)."
        )
        _add_common(parser)
        _add_timeout(parser)
        parser.set_defaults(handler=_run_command, action=action, task_id="*", data=None)
        if action == "pause":
            parser.add_argument(
                "--suspend",
                action="store_const",
                const={"suspend": True},
                dest="data",
                help="also stop (SIGSTOP) running commands until resume (SIGCONT)",
            )

    for action, text, description in (
        ("cancel", "cancel a task", "Cancel one task (needs an operator token)."),
        (
            "retry",
            "run a failed, timed-out or cancelled task again",
            "Queue an ended task again as its next attempt; its usage and cost carry on "
            "(needs an operator token). A running, queued or completed task is refused.",
        ),
    ):
        task_parser = _add_parser(subcommands, action, text, description)
        task_parser.add_argument(
            "task_id", metavar="TASK_ID", help=f"the id of the task to {action}"
        )
        _add_common(task_parser)
        _add_timeout(task_parser)
        task_parser.set_defaults(handler=_run_command, action=action, data=None)

    budget_parser = _add_parser(
        subcommands, "budget", "change the session's budget", "Change the budget."
    )
    budget_commands = budget_parser.add_subparsers(
        dest="budget_command", required=True, parser_class=ArgumentParser
    )
    set_parser = _add_parser(
        budget_commands,
        "set",
        "set the budget in USD ('none' removes it)",
        "Set the session's budget in USD; 'none' removes it. Needs an operator token. "
        "Reaching the budget pauses the executor.",
    )
    set_parser.add_argument("usd", type=_budget_amount, metavar="USD", help="the new budget")
    _add_common(set_parser)
    _add_timeout(set_parser)
    set_parser.set_defaults(handler=_run_budget_set, action="set_budget", task_id="*")


def _concurrency_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(
            f"N must be a whole number from 1 to {MAX_CONCURRENCY}, got {text!r}"
        )
    return value


def _register_concurrency(subcommands: Any) -> None:
    parser = _add_parser(
        subcommands, "concurrency", "change how many tasks run at once", "Change the concurrency."
    )
    commands = parser.add_subparsers(
        dest="concurrency_command", required=True, parser_class=ArgumentParser
    )
    set_parser = _add_parser(
        commands,
        "set",
        "set how many tasks may run at once",
        "Set how many tasks may run at once (needs an operator token). Raising it starts "
        "queued tasks at once; lowering it cancels nothing: running tasks finish first.",
    )
    set_parser.add_argument(
        "concurrency", type=_concurrency_value, metavar="N", help=f"1 to {MAX_CONCURRENCY}"
    )
    _add_common(set_parser)
    _add_timeout(set_parser)
    set_parser.set_defaults(handler=_run_concurrency_set, action="set_concurrency", task_id="*")


def register(subcommands: Any) -> None:
    """Add the client commands to ``runcast``'s subparsers."""
    _register_views(subcommands)
    _register_controls(subcommands)
    _register_concurrency(subcommands)


def _token(args: argparse.Namespace) -> str | None:
    # The server's own variable too: an operator who exported it for the server
    # should not get a 401 from the client in the same shell.
    token: str | None = (
        args.token or os.environ.get(TOKEN_ENV) or os.environ.get(SERVER_TOKEN_ENV) or None
    )
    return token


def _exit_with(args: argparse.Namespace, run: Callable[[], int]) -> int:
    """Run a client; its errors become one line on stderr and their exit code."""
    try:
        return run()
    except ClientError as exc:
        print(f"runcast {args.command}: {printable(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BaseExceptionGroup as exc:
        # Ctrl-C while a nursery ran (watch's reader and redraw tasks).
        if consists_of(exc, KeyboardInterrupt):
            return EXIT_INTERRUPTED
        raise


async def _bounded(seconds: float, url: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``fn(*args)``, turned into an "unreachable" error if the server stays silent."""
    with trio.move_on_after(seconds):
        return await fn(*args)
    raise ServerUnreachableError(f"{url}: no answer within {seconds:g}s")


def _run_status(args: argparse.Namespace) -> int:
    def run() -> int:
        status = trio.run(_bounded, args.timeout, args.url, fetch_status, args.url, _token(args))
        if args.json:
            print(json_text(status, indent=2, sort_keys=True))
        else:
            write_status(status, sys.stdout)
        return EXIT_OK

    return _exit_with(args, run)


def _run_command(args: argparse.Namespace) -> int:
    async def command() -> dict[str, Any]:
        return await send_command(
            args.url, _token(args), args.action, task_id=args.task_id, data=args.data
        )

    def run() -> int:
        reply = trio.run(_bounded, args.timeout, args.url, command)
        detail = f" (budget {format_usd(args.usd)})" if args.action == "set_budget" else ""
        if args.action == "set_concurrency":
            detail = f" (concurrency {args.concurrency})"
        if args.action == "pause" and args.data is not None:
            detail = " (running commands suspended until resume)"
        print(describe_result(reply) + detail)
        return EXIT_OK

    return _exit_with(args, run)


def _run_concurrency_set(args: argparse.Namespace) -> int:
    args.data = {"concurrency": args.concurrency}
    return _run_command(args)


def _run_budget_set(args: argparse.Namespace) -> int:
    args.data = {"budget_usd": args.usd}
    return _run_command(args)


def _run_watch(args: argparse.Namespace) -> int:
    screen = Screen(sys.stdout, redraw=can_redraw(sys.stdout))

    def run() -> int:
        with screen:  # Ctrl-C too ends the live display and shows the cursor again
            trio.run(watch, args.url, _token(args), screen)
        return EXIT_OK

    return _exit_with(args, run)
