"""How a failed attempt's error reads: the real cause, never ``ExceptionGroup: ...``.

A task that opens a trio nursery (every subprocess task does) gets even a
single error back wrapped in an ``ExceptionGroup``, maybe several deep; its
message, "Exceptions from Trio nursery (1 sub-exception)", says nothing.
"""

from __future__ import annotations

import trio

from events import truncate

from .process import CommandFailedError, CommandStartError


def sole_cause(error: BaseException) -> BaseException:
    """The error a group of one (nested any number of times) stands for; else ``error``."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def describe_failure(error: BaseException) -> str:
    """One line for ``task_failed``/``task_retrying``: ``Type: message`` of the cause.

    A group of several errors reads as ``2 errors: A: x; B: y``.
    """
    return truncate(_line(sole_cause(error)))


#: Errors of a group described at most; the rest are counted.
_MAX_CAUSES = 5


def _line(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup):
        inner = error.exceptions
        causes = [_line(sole_cause(cause)) for cause in inner[:_MAX_CAUSES]]
        if len(inner) > _MAX_CAUSES:
            causes.append(f"and {len(inner) - _MAX_CAUSES} more")
        return f"{len(inner)} errors: " + "; ".join(causes)
    text = str(error)
    if isinstance(error, CommandFailedError | CommandStartError | trio.TooSlowError):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
