"""Splitting a byte stream into lines with a bounded buffer.

A line longer than ``max_line`` bytes keeps only its first ``max_line`` bytes;
the rest is dropped as it arrives, so a 10 MB line costs at most ``max_line``
of memory.  Such lines are reported as truncated and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter

import attrs
import trio

LineHandler = Callable[[bytes, bool], None]

DEFAULT_MAX_LINE = 4 * 1024 * 1024
READ_CHUNK = 64 * 1024
# How long handling lines may hold the event loop before it lets others run.
HANDLER_SLICE_SECONDS = 0.002


@attrs.define
class LineSplitter:
    max_line: int = DEFAULT_MAX_LINE
    _buffer: bytearray = attrs.field(factory=bytearray)
    _overflowed: bool = False
    truncated_lines: int = 0
    lines: int = 0

    def __attrs_post_init__(self) -> None:
        if self.max_line < 1:
            raise ValueError("max_line must be >= 1")

    def feed(self, data: bytes | bytearray) -> list[tuple[bytes, bool]]:
        """Complete lines in ``data`` (without their newline) and whether each was cut."""
        complete: list[tuple[bytes, bool]] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                self._keep(data[start:])
                return complete
            self._keep(data[start:end])
            complete.append(self._take())
            start = end + 1

    def finish(self) -> list[tuple[bytes, bool]]:
        """The last line, if the stream did not end with a newline."""
        if not self._buffer and not self._overflowed:
            return []
        return [self._take()]

    def _keep(self, piece: bytes | bytearray) -> None:
        room = self.max_line - len(self._buffer)
        if len(piece) > room:
            self._overflowed = True
            piece = piece[: max(room, 0)]
        self._buffer += piece

    def _take(self) -> tuple[bytes, bool]:
        line, truncated = bytes(self._buffer), self._overflowed
        self._buffer.clear()
        self._overflowed = False
        self.lines += 1
        if truncated:
            self.truncated_lines += 1
        return line, truncated


async def pump_lines(
    stream: trio.abc.ReceiveStream, handle: LineHandler, splitter: LineSplitter
) -> None:
    """Call ``handle(line, truncated)`` for each line until the stream ends."""
    while True:
        data = await stream.receive_some(READ_CHUNK)
        if not data:
            break
        slice_end = perf_counter() + HANDLER_SLICE_SECONDS
        for line, truncated in splitter.feed(data):
            handle(line, truncated)
            # One read can hold hundreds of lines; let other tasks run meanwhile.
            if perf_counter() >= slice_end:
                await trio.lowlevel.checkpoint()
                slice_end = perf_counter() + HANDLER_SLICE_SECONDS
    for line, truncated in splitter.finish():
        handle(line, truncated)
