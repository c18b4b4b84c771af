"""The ``runcast`` command line: ``run`` and ``demo`` here, the other commands registered.

The client commands (``_client_commands``) and the store commands
(``_store_commands``) add their subcommands through ``register(subparsers)`` and
set ``args.handler``, a callable taking the parsed args and returning an exit code.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import trio

from events import RuncastError

from ..clients import printable
from ..server import DEFAULT_HOST, DEFAULT_PORT, ServerConfig
from . import _client_commands, _logs_command, _store_commands, _usage_command
from ._demo import DemoOptions, run_demo
from ._exits import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_USAGE, consists_of
from ._heap import settle_heap
from ._logging import LEVELS, configure_logging
from ._run import DEFAULT_STORE, RunOptions, run_job


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


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
    group.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (%(default)s)")
    group.add_argument("--port", type=_port, default=DEFAULT_PORT, help="port (%(default)s)")
    group.add_argument(
        "--interval",
        type=_number(allow_zero=False),
        default=10.0,
        help="seconds between periodic session updates while tasks run (%(default)s)",
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
    return ServerConfig(
        host=args.host,
        port=args.port,
        auth_tokens=_tokens(args.auth_token, "RUNCAST_AUTH_TOKEN"),
        viewer_tokens=_tokens(args.viewer_token, "RUNCAST_VIEWER_TOKEN"),
        allow_origins=tuple(args.allow_origin),
        allow_hosts=tuple(args.allow_host),
    )


def _run_command(args: argparse.Namespace) -> int:
    options = RunOptions(
        job_file=args.job_file,
        server=server_config(args),
        concurrency=args.concurrency,
        budget_usd=args.budget_usd,
        prices=args.prices,
        interval=args.interval,
        store=args.store,
        fresh=args.fresh,
        start_paused=args.start_paused,
        keep_serving=args.keep_serving,
    )
    return trio.run(run_job, options)


def _demo_command(args: argparse.Namespace) -> int:
    options = DemoOptions(
        server=server_config(args),
        interval=args.interval,
        concurrency=args.concurrency,
        budget_usd=args.budget_usd,
        seed=args.seed,
        speed=args.speed,
    )
    return trio.run(run_demo, options)


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
    run.add_argument("--start-paused", action="store_true", help="start paused; resume to run")
    run.add_argument(
        "--keep-serving", action="store_true", help="stay up after the last task until stopped"
    )
    _add_server_options(run)
    _add_logging_options(run, default=argparse.SUPPRESS)
    run.set_defaults(handler=_run_command, long_running=True)


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="serve the dashboard with a simulated LLM workload",
        description="Serve the dashboard with a never-ending simulated LLM workload "
        "(several models, cache reads, failures and retries, a budget that gets raised). "
        "Stop with Ctrl-C.",
    )
    _add_server_options(demo)
    demo.add_argument("--concurrency", type=_positive_int, default=4, help="(%(default)s)")
    demo.add_argument(
        "--budget-usd",
        type=_number(allow_zero=False),
        default=0.50,
        help="starting budget, raised each time it runs out (%(default)s)",
    )
    demo.add_argument("--seed", type=int, help="random seed, for a repeatable workload")
    demo.add_argument(
        "--speed",
        type=_number(allow_zero=False),
        default=1.0,
        help="run the simulation this many times faster than real time: more events per "
        "second, for load and memory tests (%(default)s)",
    )
    _add_logging_options(demo, default=argparse.SUPPRESS)
    demo.set_defaults(handler=_demo_command, long_running=True)


def _register_others(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _client_commands.register(commands)
    _store_commands.register(commands)
    _usage_command.register(commands)
    _logs_command.register(commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runcast",
        description="Run token-burning jobs with bounded concurrency; watch what they cost.",
    )
    _add_logging_options(parser, default=None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(commands)
    _add_demo(commands)
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


def _call(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
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
    configure_logging(json=bool(args.log_json), level=args.log_level or "info")
    handler: Callable[[argparse.Namespace], int] = args.handler
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
