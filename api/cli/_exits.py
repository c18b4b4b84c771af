"""Exit codes the commands share, and how an exception that ended a command is read."""

from __future__ import annotations

import signal

EXIT_USAGE = 2
#: Ctrl-C, as a shell reports a command killed by SIGINT.
EXIT_INTERRUPTED = 128 + signal.SIGINT
#: The reader of stdout left (``| head``), as a shell reports a writer killed by SIGPIPE.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def consists_of(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``exc`` is a ``kind``, or a group (trio's nurseries) of nothing else.

    A Ctrl-C or a closed pipe that arrives while a nursery runs comes out
    wrapped in an exception group, possibly nested.
    """
    if isinstance(exc, BaseExceptionGroup):
        _, rest = exc.split(kind)
        return rest is None
    return isinstance(exc, kind)
