"""The ``runcast`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runcast",
        description="Run token-burning jobs with bounded concurrency; watch what they cost.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("demo", help="serve the dashboard with a simulated LLM workload")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        print("runcast demo: not available yet (comes with the api server)", file=sys.stderr)
        return 0
    return 2
