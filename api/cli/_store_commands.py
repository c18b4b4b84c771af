"""``runcast sessions``, ``runcast show`` and ``runcast export``: the store's history.

The commands are defined here, light; their implementation (``_store_views``,
with the store beneath it) is imported when one of them runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._lazy import LazyHandler

DEFAULT_STORE = "runcast.db"
_VIEWS = "api.cli._store_views"


def register(commands: Any) -> None:
    """Add the history commands to the ``runcast`` sub-parsers."""
    sessions = commands.add_parser(
        "sessions",
        help="list past sessions with duration, tokens, cost and task counts",
        description="List the sessions recorded in a store, newest first.",
    )
    _store_option(sessions)
    sessions.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sessions.set_defaults(handler=LazyHandler(f"{_VIEWS}:sessions"))

    show = commands.add_parser(
        "show",
        help="per-task and per-model breakdown of one session",
        description="Show one session: totals, each task, each model, pause/budget changes.",
    )
    show.add_argument("session_id", metavar="SESSION_ID", help="session id or a unique prefix")
    _store_option(show)
    show.add_argument("--json", action="store_true", help="print JSON instead of tables")
    show.set_defaults(handler=LazyHandler(f"{_VIEWS}:show"))

    export = commands.add_parser(
        "export",
        help="export a session's usage records for accounting",
        description="Write every usage record of a session as CSV or JSON lines to stdout.",
    )
    export.add_argument("session_id", metavar="SESSION_ID", help="session id or a unique prefix")
    _store_option(export)
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="output format")
    export.set_defaults(handler=LazyHandler(f"{_VIEWS}:export"))


def _store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=DEFAULT_STORE,
        metavar="PATH",
        help=f"SQLite store to read (default: {DEFAULT_STORE})",
    )
