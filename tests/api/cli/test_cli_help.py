"""Every option's help says its default; ``runcast --version`` says the installed version."""

from __future__ import annotations

import argparse
from importlib.metadata import version

import pytest

from api.cli._help import HelpFormatter
from api.cli._main import build_parser


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += _subparsers(child)
    return found


def test_every_option_with_a_default_says_it() -> None:
    unsaid: list[str] = []
    for parser in _subparsers(build_parser()):
        formatter = HelpFormatter(parser.prog)
        for action in parser._actions:
            if action.help in (None, argparse.SUPPRESS) or isinstance(
                action, argparse._SubParsersAction
            ):
                continue
            if action.default in (None, False, argparse.SUPPRESS, [], ()):
                continue
            text = formatter._get_help_string(action) or ""
            if "default" not in text:
                unsaid.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    assert unsaid == []


def test_demo_concurrency_and_export_format_say_their_defaults() -> None:
    parser = build_parser()
    texts = {p.prog: p.format_help() for p in _subparsers(parser)}
    assert "tasks run at once (default: 4)" in " ".join(texts["runcast demo"].split())
    assert "output format (default: csv)" in " ".join(texts["runcast export"].split())


def test_version_is_the_installed_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        build_parser().parse_args(["--version"])
    assert exc_info.value.code == 0
    assert capsys.readouterr().out == f"runcast {version('runcast')}\n"
