"""``runcast usage FILE...`` defined, light: the executor it reads with loads when it runs."""

from __future__ import annotations

from typing import Any

from ._lazy import LazyHandler


def register(commands: Any) -> None:
    """Add ``runcast usage`` to the ``runcast`` sub-parsers."""
    usage = commands.add_parser(
        "usage",
        help="show the usage runcast reads from a recorded agent stdout",
        description=(
            "Read each FILE ('-': standard input) as a task's stdout is read and print the "
            "format recognised, the usage records and the totals per model with their cost "
            "and cost source. Nothing is stored."
        ),
    )
    usage.add_argument("files", metavar="FILE", nargs="+", help="a recorded stdout, or -")
    usage.add_argument("--json", action="store_true", help="print JSON instead of tables")
    usage.add_argument("--model", default="", help="the model of records that name none")
    usage.add_argument("--provider", default=None, help="the provider of records that name none")
    usage.set_defaults(handler=LazyHandler("api.cli._usage_command:run_usage"))
