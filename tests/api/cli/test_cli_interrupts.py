"""Ctrl-C ends every command with 130 and one line, even when a nursery wraps it."""

from __future__ import annotations

import argparse

import pytest

from api.cli._client_commands import _exit_with
from api.cli._exits import EXIT_INTERRUPTED, consists_of
from api.cli._main import _call


def _interrupted_in_a_nursery() -> int:
    raise BaseExceptionGroup("nursery", [KeyboardInterrupt()])


def _interrupted_deeper() -> int:
    raise BaseExceptionGroup("outer", [BaseExceptionGroup("inner", [KeyboardInterrupt()])])


@pytest.mark.parametrize("run", [_interrupted_in_a_nursery, _interrupted_deeper])
def test_a_grouped_ctrl_c_is_an_interrupt_not_a_traceback(
    run: object, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(command="watch")
    assert _call(lambda _args: run(), args) == EXIT_INTERRUPTED  # type: ignore[operator]
    assert capsys.readouterr().err == "runcast watch: interrupted\n"
    assert _exit_with(args, run) == EXIT_INTERRUPTED  # type: ignore[arg-type]


def test_a_group_with_anything_else_is_not_an_interrupt() -> None:
    def mixed() -> int:
        raise BaseExceptionGroup("nursery", [KeyboardInterrupt(), ValueError("boom")])

    args = argparse.Namespace(command="watch")
    with pytest.raises(BaseExceptionGroup):
        _exit_with(args, mixed)
    assert not consists_of(
        BaseExceptionGroup("n", [KeyboardInterrupt(), ValueError()]), KeyboardInterrupt
    )
