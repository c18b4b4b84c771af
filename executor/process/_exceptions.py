"""Exceptions of running a command; each one is an ``ExecutorError``."""

from __future__ import annotations

import signal

from .._exceptions import ExecutorError


class CommandFailedError(ExecutorError):
    """The command exited with a non-zero status (or was killed by a signal)."""

    def __init__(self, exit_code: int) -> None:
        if exit_code < 0:
            try:
                what = f"killed by signal {signal.Signals(-exit_code).name}"
            except ValueError:
                what = f"killed by signal {-exit_code}"
        else:
            what = f"exit code {exit_code}"
        super().__init__(what)
        self.exit_code = exit_code


class CommandStartError(ExecutorError):
    """The command could not be started (missing program, bad cwd, ...)."""
