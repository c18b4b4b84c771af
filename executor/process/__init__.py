"""Command tasks: running a command in its own process group and reading its pipes.

``run_command`` runs a ``CommandSpec`` for a task (any ``CommandTask``: the
executor passes its ``TaskContext``) and never leaves a process behind
(``_reaping``); its stdout and stderr are read in bounded lines (``_lines``,
``_pipes``), and the ``StdoutReader`` turns each read's lines into usage
records and batched ``task_output`` events (``_output``).
"""

from ._command import run_command
from ._exceptions import CommandFailedError, CommandStartError
from ._lines import (
    DEFAULT_MAX_LINE,
    LINES_PER_STEP,
    MAX_OBJECT_BYTES,
    READ_CHUNK,
    Line,
    LinesHandler,
    LineSplitter,
    ObjectAssembler,
    drain_lines,
    pump_lines,
)
from ._output import OutputLine, pack_output
from ._reaping import signal_group, signal_group_logged, terminate_group
from ._spec import CommandSpec
from ._stdout import StdoutReader
from ._task import CommandTask

__all__ = [
    "DEFAULT_MAX_LINE",
    "LINES_PER_STEP",
    "MAX_OBJECT_BYTES",
    "READ_CHUNK",
    "CommandFailedError",
    "CommandSpec",
    "CommandStartError",
    "CommandTask",
    "Line",
    "LineSplitter",
    "LinesHandler",
    "ObjectAssembler",
    "OutputLine",
    "StdoutReader",
    "drain_lines",
    "pack_output",
    "pump_lines",
    "run_command",
    "signal_group",
    "signal_group_logged",
    "terminate_group",
]
