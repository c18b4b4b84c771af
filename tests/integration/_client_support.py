"""Running a client command's handler in-process, as the ``runcast`` console script runs it."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pytest
import trio

from api.cli._client_commands import register


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """``argv`` parsed by the client commands' parsers alone."""
    root = argparse.ArgumentParser(prog="runcast")
    register(root.add_subparsers(dest="command", required=True))
    return root.parse_args(argv)


async def run_handler(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stdout+stderr of one command (its handler calls trio.run: in a thread)."""
    args = parse(argv)
    capsys.readouterr()
    code: int = await trio.to_thread.run_sync(args.handler, args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err
