"""The ``runcast`` command line: ``run`` and ``demo`` here, the other commands registered.

The client commands (``_client_commands``, ``_logs_command``), the store commands
(``_store_commands``) and ``usage`` (``_usage_args``) add their subcommands through
``register(subparsers)`` and set ``args.handler``, a callable taking the parsed args
and returning an exit code. This module and those are light: a command that needs
the server, the store or the executor names its handler as a ``LazyHandler``, and its
implementation is imported when it runs (bench/README.md §7).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from events import RuncastError

from .._defaults import DEFAULT_HOST, DEFAULT_PORT
from ..clients import printable
from . import _client_commands, _cluster_args, _logs_command, _store_commands, _usage_args
from ._exits import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_USAGE, consists_of
from ._help import ArgumentParser, VersionAction
from ._lazy import Handler, LazyHandler
from ._logging import LEVELS, configure_logging
from ._store_commands import DEFAULT_STORE

if TYPE_CHECKING:
    from ..server import ServerConfig

#: ``executor.ON_BUDGET``, written here so that building the parser does not load the
#: executor (tests/api/cli/test_cli_startup.py and test_on_budget_cli.py check they agree).
ON_BUDGET = ("pause", "suspend", "cancel")
_SERVE = "api.cli._serve_commands"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _task_ids(text: str) -> frozenset[str]:
    ids = [part.strip() for part in text.split(",")]
    if not all(ids):
        raise argparse.ArgumentTypeError(f"expected task ids separated by commas, got {text!r}")
    return frozenset(ids)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {value}")
    return value


def _number(*, allow_zero: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text}")
        return value

    return parse


def _add_logging_options(parser: argparse.ArgumentParser, *, default: object) -> None:
    parser.add_argument(
        "--log-json", action="store_true", default=default, help="log JSON lines to stderr"
    )
    parser.add_argument(
        "--log-level", choices=LEVELS, default=default, help="lowest level logged (default info)"
    )


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument(
        "--host", default=DEFAULT_HOST, help="address to listen on (default: %(default)s)"
    )
    group.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help="port (default: %(default)s)"
    )
    group.add_argument(
        "--interval",
        type=_number(allow_zero=False),
        default=10.0,
        help="seconds between periodic session updates while tasks run (default: %(default)s)",
    )
    group.add_argument(
        "--auth-token",
        action="append",
        default=None,
        metavar="TOKEN",
        help="operator token (may repeat; default $RUNCAST_AUTH_TOKEN); required off loopback",
    )
    group.add_argument(
        "--viewer-token",
        action="append",
        default=None,
        metavar="TOKEN",
        help="read-only token (may repeat; default $RUNCAST_VIEWER_TOKEN)",
    )
    group.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="browser origin allowed besides the server's own, e.g. https://dash.example.com",
    )
    group.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="Host header served besides localhost and loopback addresses (may repeat; '*': "
        "any), e.g. a proxy's name",
    )


def _tokens(given: list[str] | None, variable: str) -> tuple[str, ...]:
    if given:
        return tuple(given)
    from_env = os.environ.get(variable, "")
    return (from_env,) if from_env else ()


def server_config(args: argparse.Namespace) -> ServerConfig:
    from ..server import ServerConfig  # only the commands that serve load the server

    return ServerConfig(
        host=args.host,
        port=args.port,
        auth_tokens=_tokens(args.auth_token, "RUNCAST_AUTH_TOKEN"),
        viewer_tokens=_tokens(args.viewer_token, "RUNCAST_VIEWER_TOKEN"),
        allow_origins=tuple(args.allow_origin),
        allow_hosts=tuple(args.allow_host),
    )


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run",
        help="run a job file, serving the dashboard and API while it runs",
        description="Run the tasks of a TOML job file with bounded concurrency, serving the "
        "dashboard, WebSocket and /metrics while they run. Exits 0 when every task "
        "completed, 1 otherwise (2 for bad input, 128+N when stopped by signal N).",
    )
    run.add_argument("job_file", type=Path, metavar="JOBFILE", help="the TOML job file")
    run.add_argument(
        "--concurrency", type=_positive_int, help="tasks running at once (job file, else 4)"
    )
    run.add_argument(
        "--budget-usd", type=_number(allow_zero=True), help="pause when this much is spent"
    )
    run.add_argument(
        "--on-budget",
        choices=ON_BUDGET,
        help="when the budget is spent, running tasks: run on (pause), are stopped until "
        "resume (suspend), or are cancelled (cancel); job file on_budget, else pause",
    )
    run.add_argument("--prices", type=Path, metavar="FILE", help="TOML price table (USD/Mtok)")
    run.add_argument(
        "--store",
        metavar="PATH",
        default=DEFAULT_STORE,
        help="SQLite store recording the session; an unfinished run of the same job file "
        "in it is resumed (:memory: keeps nothing; default %(default)s)",
    )
    run.add_argument(
        "--fresh",
        action="store_true",
        help="start a new session even if the store holds an unfinished run of this job",
    )
    run.add_argument(
        "--retry-failed",
        action="store_true",
        help="run again, in the job's newest session (finished or not), every task that did "
        "not complete; completed tasks keep their result",
    )
    run.add_argument(
        "--only",
        type=_task_ids,
        metavar="ID[,ID...]",
        help="with --retry-failed: only these tasks",
    )
    run.add_argument(
        "--accept-changes",
        action="store_true",
        help="with --retry-failed: run tasks whose command changed since, with the new command "
        "(else refused, naming them)",
    )
    run.add_argument("--start-paused", action="store_true", help="start paused; resume to run")
    run.add_argument(
        "--keep-serving", action="store_true", help="stay up after the last task until stopped"
    )
    _add_server_options(run)
    _add_logging_options(run, default=argparse.SUPPRESS)
    run.set_defaults(handler=LazyHandler(f"{_SERVE}:run_command"), long_running=True)


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="serve the dashboard with a simulated LLM workload",
        description="Serve the dashboard with a never-ending simulated LLM workload "
        "(several models, cache reads, failures and retries, a budget that gets raised). "
        "Stop with Ctrl-C.",
    )
    _add_server_options(demo)
    demo.add_argument(
        "--concurrency",
        type=_positive_int,
        default=4,
        help="tasks run at once (default: %(default)s)",
    )
    demo.add_argument(
        "--budget-usd",
        type=_number(allow_zero=False),
        default=0.50,
        help="starting budget, raised each time it runs out (default: %(default)s)",
    )
    demo.add_argument("--seed", type=int, help="random seed, for a repeatable workload")
    demo.add_argument(
        "--speed",
        type=_number(allow_zero=False),
        default=1.0,
        help="run the simulation this many times faster than real time: more events per "
        "second, for load and memory tests (default: %(default)s)",
    )
    _add_logging_options(demo, default=argparse.SUPPRESS)
    demo.set_defaults(handler=LazyHandler(f"{_SERVE}:demo_command"), long_running=True)


def _register_others(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_clients(commands, _client_commands.register)
    _store_commands.register(commands)
    _usage_args.register(commands)
    _register_clients(commands, _logs_command.register)


def _register_clients(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None],
) -> None:
    """Client commands log nothing through structlog, so they do not load it (start-up)."""
    before = set(commands.choices)
    register(commands)
    for name in set(commands.choices) - before:
        commands.choices[name].set_defaults(structured_logs=False)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="runcast",
        description="Run token-burning jobs with bounded concurrency; watch what they cost.",
    )
    parser.add_argument("--version", action=VersionAction, help="print runcast's version")
    _add_logging_options(parser, default=None)
    # Typed as argparse's: the commands' modules take the standard parser type.
    commands: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        parser_class=ArgumentParser,
    )
    _add_run(commands)
    _add_demo(commands)
    _cluster_args.register(
        commands,
        positive_int=_positive_int,
        number=_number,
        on_budget=ON_BUDGET,
        add_logging_options=_add_logging_options,
        add_server_options=_add_server_options,
        default_store=DEFAULT_STORE,
    )
    _register_others(commands)
    return parser


def _runcast_errors(exc: BaseException) -> list[RuncastError] | None:
    """The runcast errors ``exc`` consists of (nurseries group them), or None if not only."""
    if isinstance(exc, RuncastError):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        found: list[RuncastError] = []
        for inner in exc.exceptions:
            errors = _runcast_errors(inner)
            if errors is None:
                return None
            found += errors
        return found
    return None


def _silence_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered for it goes nowhere, quietly.

    Python's advice for a reader that left (``runcast show | head``): otherwise the
    interpreter's final flush fails again and prints ``Exception ignored ...``.
    """
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's capture): nothing to flush at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _call(handler: Handler, args: argparse.Namespace) -> int:
    """The command's exit code; runcast errors become lines on stderr and exit 2."""
    try:
        return handler(args)
    except (RuncastError, BaseExceptionGroup) as exc:
        if consists_of(exc, KeyboardInterrupt):
            print(f"runcast {args.command}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        errors = _runcast_errors(exc)
        if errors is None:
            raise
        for error in errors:
            print(f"runcast {args.command}: {printable(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"runcast {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "structured_logs", True):
        configure_logging(json=bool(args.log_json), level=args.log_level or "info")
    handler: Handler = args.handler
    if argv is None and getattr(args, "long_running", False):
        # Only as the process's own entry point (the console script): a caller
        # passing argv (tests, embedding) keeps its garbage collector as it is.
        settle_heap()
    try:
        status = _call(handler, args)
        # Flushed here, not at exit, so that a reader that left is noticed below.
        sys.stdout.flush()
    except (BrokenPipeError, BaseExceptionGroup) as exc:
        if not consists_of(exc, BrokenPipeError):
            raise
        # The reader left (``| head``): stop quietly, with the status a shell gives
        # any writer killed by SIGPIPE, so ``set -o pipefail`` sees the same.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    return status


def settle_heap() -> None:
    """``_heap.settle_heap``, loaded only by the long-running commands (genai-prices)."""
    from ._heap import settle_heap as settle

    settle()
