"""A command's stdout and stderr: read while it runs, drained when it is cut short.

Both pipes keep their state (``LineSplitter``: the line not yet ended, the
lines read but not handed over) across the two ways of reading them, so a
drain after a cut continues exactly where the pumps stopped.
"""

from __future__ import annotations

import attrs
import structlog
import trio

from ._lines import LinesHandler, LineSplitter, drain_lines, pump_lines
from ._reaping import pipe_inodes

log = structlog.get_logger("runcast.executor")


@attrs.define(eq=False)
class CommandOutput:
    """The pipes of one command, and what their lines are handed to."""

    stdout: trio.abc.ReceiveStream
    stderr: trio.abc.ReceiveStream
    on_stdout: LinesHandler
    on_stderr: LinesHandler
    stdout_lines: LineSplitter
    stderr_lines: LineSplitter
    #: Set once both pipes reached their end of file.
    ended: trio.Event = attrs.field(factory=trio.Event)
    #: The pipes' inodes, to find processes that escaped the group and hold them.
    inodes: frozenset[int] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.inodes = frozenset(pipe_inodes(self.stdout, self.stderr))

    async def pump(self) -> None:
        """Read both pipes to their end, handing over each read's lines."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump_lines, self.stdout, self.on_stdout, self.stdout_lines)
            nursery.start_soon(pump_lines, self.stderr, self.on_stderr, self.stderr_lines)
        self.ended.set()

    async def drain(self) -> None:
        """After the pumps were cut short: hand over what the pipes hold now.

        Never waits for a writer (one that escaped the group may never stop);
        call it shielded, once the group was stopped, so what the group wrote
        is all in the pipes.
        """
        if self.ended.is_set():
            return
        stdout_ended = await drain_lines(self.stdout, self.on_stdout, self.stdout_lines)
        stderr_ended = await drain_lines(self.stderr, self.on_stderr, self.stderr_lines)
        if stdout_ended and stderr_ended:
            self.ended.set()

    def log_cut_lines(self, task_id: str) -> None:
        """Each such line was published cut (truncated=True); say what was lost."""
        for name, splitter in (("stdout", self.stdout_lines), ("stderr", self.stderr_lines)):
            if splitter.truncated_lines:
                log.warning(
                    "output_lines_cut",
                    task_id=task_id,
                    stream=name,
                    lines=splitter.truncated_lines,
                    bytes_dropped=splitter.dropped_bytes,
                    max_line_bytes=splitter.max_line,
                )
