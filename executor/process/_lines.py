"""Splitting a byte stream into lines with a bounded buffer.

A line longer than ``max_line`` bytes keeps only its first ``max_line`` bytes;
the rest is dropped as it arrives, so a 10 MB line costs at most ``max_line``
of memory.  Such lines are reported as truncated and counted
(``truncated_lines``, ``dropped_bytes``).

``pump_lines`` hands the handler every complete line of one read at once, so
the handler can parse them all and then publish once (e.g. one coalesced usage
event per read), in slices of at most ``LINES_PER_STEP`` lines so a read of
thousands of short lines cannot hold the event loop for long.  A pump cut
short between two slices keeps the lines it read but did not hand over in its
splitter (``held``); ``drain_lines`` hands them over, then what the pipe holds
at that moment, without waiting for more: what a task wrote before it was cut
short is still read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from itertools import repeat

import attrs
import trio

Line = tuple[bytes, bool]
"""A line without its newline, and whether it was cut to ``max_line`` bytes."""
LinesHandler = Callable[[list[Line]], None]

DEFAULT_MAX_LINE = 4 * 1024 * 1024
READ_CHUNK = 64 * 1024
# Lines handled in one task step at most: a 64 KiB read of empty lines is
# 65,536 lines, each maybe a published event; slices of 128 keep a step within
# the ingestion benchmark's 10 ms (bench/README.md, section 3; bench/HISTORY.md,
# "A read at a time, in slices").
LINES_PER_STEP = 128
# What ``drain_lines`` reads of a pipe at most: Linux's largest pipe an
# unprivileged process can ask for (fs.pipe-max-size), so all a process that
# has ended left in it, while a writer that escaped the task's process group
# cannot keep the drain going.
DRAIN_MAX_BYTES = 1024 * 1024


@attrs.define
class LineSplitter:
    max_line: int = DEFAULT_MAX_LINE
    _buffer: bytearray = attrs.field(factory=bytearray)
    _overflowed: bool = False
    truncated_lines: int = 0
    dropped_bytes: int = 0
    lines: int = 0
    # Complete lines read but not yet handed over: a pump cut short between the
    # slices of one read (at most one read's lines).
    _held: list[Line] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        if self.max_line < 1:
            raise ValueError("max_line must be >= 1")

    @property
    def buffered(self) -> int:
        """Bytes held for the line not yet ended (at most ``max_line``)."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray) -> list[Line]:
        """Complete lines in ``data`` (without their newline) and whether each was cut."""
        pieces = bytes(data).split(b"\n")
        tail = pieces.pop()
        complete: list[Line] = []
        if pieces:
            if self._buffer or self._overflowed:
                # The first piece ends the line begun in an earlier read.
                self._keep(pieces[0])
                complete.append(self._take())
                del pieces[0]
            limit = self.max_line
            if pieces and max(map(len, pieces)) <= limit:
                # The usual read: no line to cut, so no Python step per line.
                complete.extend(zip(pieces, repeat(False)))
            else:
                for piece in pieces:
                    if len(piece) > limit:
                        self.truncated_lines += 1
                        self.dropped_bytes += len(piece) - limit
                        complete.append((piece[:limit], True))
                    else:
                        complete.append((piece, False))
            self.lines += len(pieces)
        self._keep(tail)
        return complete

    def hold(self, lines: list[Line]) -> None:
        """Keep ``lines`` (read, not handed over) for the next pump or drain of this stream."""
        self._held.extend(lines)

    def take_held(self) -> list[Line]:
        held, self._held = self._held, []
        return held

    def finish(self) -> list[Line]:
        """The last line, if the stream did not end with a newline."""
        if not self._buffer and not self._overflowed:
            return []
        return [self._take()]

    def _keep(self, piece: bytes) -> None:
        room = self.max_line - len(self._buffer)
        if len(piece) > room:
            self._overflowed = True
            self.dropped_bytes += len(piece) - max(room, 0)
            piece = piece[: max(room, 0)]
        self._buffer += piece

    def _take(self) -> Line:
        line, truncated = bytes(self._buffer), self._overflowed
        self._buffer.clear()
        self._overflowed = False
        self.lines += 1
        if truncated:
            self.truncated_lines += 1
        return line, truncated


async def _hand_over(lines: list[Line], handle: LinesHandler, splitter: LineSplitter) -> None:
    """``handle`` the lines in slices of ``LINES_PER_STEP``, a checkpoint between two.

    Cut short at a checkpoint, the lines not handed over stay in ``splitter``.
    """
    for start in range(0, len(lines), LINES_PER_STEP):
        if start:
            try:
                await trio.lowlevel.checkpoint()
            except BaseException:
                splitter.hold(lines[start:])
                raise
        handle(lines[start : start + LINES_PER_STEP])


async def pump_lines(
    stream: trio.abc.ReceiveStream, handle: LinesHandler, splitter: LineSplitter
) -> None:
    """Call ``handle(lines)`` with the complete lines of each read until the stream ends.

    The last line, if the stream ended without a newline, is handled on its own.
    """
    await _hand_over(splitter.take_held(), handle, splitter)
    while True:
        data = await stream.receive_some(READ_CHUNK)
        if not data:
            break
        await _hand_over(splitter.feed(data), handle, splitter)
    last = splitter.finish()
    if last:
        handle(last)


async def drain_lines(
    stream: trio.abc.ReceiveStream,
    handle: LinesHandler,
    splitter: LineSplitter,
    *,
    max_bytes: int = DRAIN_MAX_BYTES,
) -> bool:
    """Hand over what a stream whose pump was cut short still has, without waiting.

    First the lines its pump read but did not hand over, then what the pipe
    holds now (at most ``max_bytes``), then the line a newline did not end:
    nothing more of this stream will be read.  Returns whether it reached its
    end of file.  Only a pipe (an ``FdStream``, non-blocking) can be read
    without waiting; of any other stream only the held lines are handed over.
    Run it where cancellation cannot cut it (a shielded scope), or held lines
    may be left unhandled.
    """
    await _hand_over(splitter.take_held(), handle, splitter)
    ended = False
    if isinstance(stream, trio.lowlevel.FdStream):
        fd = stream.fileno()
        left = max_bytes
        while left > 0:
            try:
                data = os.read(fd, min(READ_CHUNK, left))
            except BlockingIOError:  # empty now: a writer still holds it
                break
            if not data:
                ended = True
                break
            left -= len(data)
            await _hand_over(splitter.feed(data), handle, splitter)
            await trio.lowlevel.checkpoint()  # a read at a time, as a pump does
    last = splitter.finish()
    if last:
        handle(last)
    return ended


#: Bytes of a multi-line JSON object kept at most (``ObjectAssembler``).
MAX_OBJECT_BYTES = 1024 * 1024


@attrs.define
class ObjectAssembler:
    """Joins a pretty-printed JSON object that spans lines (Gemini CLI's ``--output-format
    json``): from a line that is just ``{`` to the next line that is just ``}``.

    Bounded: an object longer than ``max_bytes`` (or holding a line that was cut)
    is let go, counted in ``too_large``, and nothing of it is returned.  The lines
    themselves are the reader's to publish; this only keeps a copy.
    """

    max_bytes: int = MAX_OBJECT_BYTES
    too_large: int = 0
    #: An object has begun and not yet ended (an attribute: read for every output line).
    active: bool = False
    _parts: list[bytes] = attrs.field(factory=list)
    _size: int = 0

    def feed(self, raw: bytes, truncated: bool) -> bytes | None:
        """The whole object when ``raw`` ends one; else None."""
        line = raw.rstrip(b"\r")
        if not self.active:
            if line == b"{" and not truncated:
                self._parts, self._size, self.active = [line], 1, True
            return None
        self._size += len(line) + 1
        if truncated or self._size > self.max_bytes:
            self.too_large += 1
            self._parts, self.active = [], False
            return None
        self._parts.append(line)
        if line != b"}":
            return None
        whole = b"\n".join(self._parts)
        self._parts, self.active = [], False
        return whole
