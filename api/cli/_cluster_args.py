"""The cluster commands (``serve``, ``worker``, ``submit``) defined, light: redis loads when
they run."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._lazy import LazyHandler

_CLUSTER = "api.cli._cluster_commands"
DEFAULT_WORKER_CONCURRENCY = 4
DEFAULT_LEASE_SECONDS = 30.0
#: ``api.cluster.DEFAULT_EVENTS_MAXLEN`` (a test holds them equal: this module stays light).
DEFAULT_EVENTS_MAXLEN = 100_000


def add_redis_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster")
    group.add_argument(
        "--redis",
        required=True,
        metavar="URL",
        help="redis://[user:password@]host:port/db or rediss:// (TLS, optionally "
        "?ssl_ca_certs=FILE&ssl_certfile=FILE&ssl_keyfile=FILE); the password may come from "
        "$RUNCAST_REDIS_PASSWORD, the CA bundle from $RUNCAST_REDIS_CA_CERTS",
    )
    group.add_argument(
        "--session", required=True, metavar="NAME", help="the session (1-64 of A-Z a-z 0-9 . _ -)"
    )


def _add_serve(
    commands: Any,
    *,
    default_store: str,
    add_server_options: Callable[[argparse.ArgumentParser], None],
    add_logging_options: Callable[..., None],
) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve a cluster session's dashboard and API (cluster mode, Redis)",
        description="Serve the dashboard, WebSocket, /api/* and /metrics of a session whose "
        "tasks run on 'runcast worker' processes, reading its events from Redis; operators' "
        "commands go to every worker. Several may serve one session. Stop with Ctrl-C/SIGTERM "
        "(exit 0); bad input, or a Redis that is unreachable or refuses the credentials: exit 2.",
    )
    add_redis_options(serve)
    serve.add_argument(
        "--store",
        metavar="PATH",
        default=default_store,
        help="SQLite store the session is recorded into (default %(default)s)",
    )
    serve.add_argument(
        "--record",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="record the session into --store (default: when no other process records it "
        "there; --record fails if one does)",
    )
    add_server_options(serve)
    add_logging_options(serve, default=argparse.SUPPRESS)
    serve.set_defaults(
        handler=LazyHandler("api.cli._serve_cluster:serve_command"), long_running=True
    )


def register(
    commands: Any,
    *,
    positive_int: Callable[[str], int],
    number: Callable[..., Callable[[str], float]],
    on_budget: Sequence[str],
    add_logging_options: Callable[..., None],
    add_server_options: Callable[[argparse.ArgumentParser], None],
    default_store: str,
) -> None:
    """Add ``runcast serve``, ``worker`` and ``submit`` (``_main`` passes its argument types
    and the options ``serve`` shares with ``run``)."""
    _add_serve(
        commands,
        default_store=default_store,
        add_server_options=add_server_options,
        add_logging_options=add_logging_options,
    )
    worker = commands.add_parser(
        "worker",
        help="run a cluster session's tasks (cluster mode, Redis)",
        description="Claim tasks of a session from Redis, run them here and append their "
        "events to the session. Ctrl-C/SIGTERM: stop claiming, hand back waiting tasks, "
        "finish running ones (a second one stops them at once). A worker killed outright "
        "leaves a ledger of its commands' process groups in $RUNCAST_STATE_DIR (default "
        "$XDG_RUNTIME_DIR/runcast, else /tmp/runcast-UID); the next worker on the host kills "
        "them. Exits 2 for bad input or credentials Redis refuses.",
    )
    add_redis_options(worker)
    worker.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_WORKER_CONCURRENCY,
        help="tasks run here at once (default: %(default)s)",
    )
    worker.add_argument("--name", help="this worker's name (default: HOST-PID)")
    worker.add_argument(
        "--lease",
        type=number(allow_zero=False),
        default=DEFAULT_LEASE_SECONDS,
        metavar="SECONDS",
        help="a task whose worker stops renewing for this long is claimed by another "
        "(default: %(default)s)",
    )
    worker.add_argument(
        "--exit-when-idle",
        action="store_true",
        help="exit once the session has no task queued or running and is not paused",
    )
    add_logging_options(worker, default=argparse.SUPPRESS)
    worker.set_defaults(handler=LazyHandler(f"{_CLUSTER}:worker_command"), long_running=True)

    submit = commands.add_parser(
        "submit",
        help="enqueue a job file's tasks in a cluster session (cluster mode, Redis)",
        description="Check a TOML job file as 'runcast run' does (same errors) and enqueue "
        "its tasks in the session. Submitting the same tasks again adds nothing. Budget, "
        "prices, on-budget and start-paused are set by a session's first submit.",
    )
    submit.add_argument("job_file", type=Path, metavar="JOBFILE", help="the TOML job file")
    add_redis_options(submit)
    submit.add_argument(
        "--budget-usd", type=number(allow_zero=True), help="pause every worker when this is spent"
    )
    submit.add_argument(
        "--on-budget",
        choices=on_budget,
        help="when the budget is spent, running tasks run on (pause), are stopped (suspend) "
        "or cancelled (cancel); job file on_budget, else pause",
    )
    submit.add_argument("--prices", type=Path, metavar="FILE", help="TOML price table (USD/Mtok)")
    submit.add_argument("--start-paused", action="store_true", help="no task starts until resumed")
    submit.add_argument(
        "--events-maxlen",
        type=positive_int,
        default=DEFAULT_EVENTS_MAXLEN,
        metavar="N",
        help="about how many events Redis keeps of the session (older ones are trimmed; a "
        "recording serve node's store keeps them all) (default: %(default)s)",
    )
    add_logging_options(submit, default=argparse.SUPPRESS)
    submit.set_defaults(handler=LazyHandler(f"{_CLUSTER}:submit_command"))
