"""Reading what a cut-short stream still has: held lines, then the pipe, never waiting.

A task cut short (timeout, cancel) must still have what it wrote counted: its
usage lines are spending.  ``drain_lines`` reads what a pipe holds at that
moment; a pump cut between the slices of one read keeps the rest for it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from executor.process import LINES_PER_STEP, Line, LineSplitter, drain_lines, pump_lines


class Handed:
    """Every batch of lines handed over, in order."""

    def __init__(self) -> None:
        self.batches: list[list[Line]] = []

    def __call__(self, lines: list[Line]) -> None:
        self.batches.append(list(lines))

    @property
    def lines(self) -> list[bytes]:
        return [raw for batch in self.batches for raw, _ in batch]


@pytest.fixture
async def pipe() -> AsyncIterator[tuple[trio.lowlevel.FdStream, int]]:
    """A pipe's read end as trio reads a subprocess's stdout, and its write end."""
    read_fd, write_fd = os.pipe()
    stream = trio.lowlevel.FdStream(read_fd)  # non-blocking, closes read_fd
    try:
        yield stream, write_fd
    finally:
        await stream.aclose()
        with contextlib.suppress(OSError):  # the test closed it
            os.close(write_fd)


async def test_drain_hands_over_what_a_pipe_holds_without_waiting_for_its_writer(
    pipe: tuple[trio.lowlevel.FdStream, int],
) -> None:
    stream, write_fd = pipe
    os.write(write_fd, b'{"usage": {"input_tokens": 5}}\nsecond\npartial')
    handed = Handed()
    # The write end stays open: a writer that may never stop (an escaped orphan).
    assert not await drain_lines(stream, handed, LineSplitter())
    assert handed.lines == [b'{"usage": {"input_tokens": 5}}', b"second", b"partial"]
    os.write(write_fd, b"later\n")  # nothing more of the stream is read
    assert handed.lines[-1] == b"partial"


async def test_drain_reads_to_the_end_once_no_writer_is_left(
    pipe: tuple[trio.lowlevel.FdStream, int],
) -> None:
    stream, write_fd = pipe
    os.write(write_fd, b"one\ntwo\n")
    os.close(write_fd)
    handed = Handed()
    assert await drain_lines(stream, handed, LineSplitter())
    assert handed.lines == [b"one", b"two"]


async def test_drain_reads_at_most_max_bytes_of_a_pipe(
    pipe: tuple[trio.lowlevel.FdStream, int],
) -> None:
    stream, write_fd = pipe
    os.write(write_fd, b"".join(b"%07d\n" % i for i in range(512)))  # 4 KiB
    handed = Handed()
    assert not await drain_lines(stream, handed, LineSplitter(), max_bytes=1000)
    # 125 lines of 8 bytes are 1000 bytes; the rest stays in the pipe, unread.
    assert handed.lines == [b"%07d" % i for i in range(125)]
    assert os.read(stream.fileno(), 8) == b"0000125\n"


async def test_a_pump_cut_between_slices_keeps_the_rest_of_its_read_for_the_drain() -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    count = 2 * LINES_PER_STEP + 10
    await send.send_all(b"".join(b"l%d\n" % i for i in range(count)) + b"partial")
    handed = Handed()
    splitter = LineSplitter()
    with trio.CancelScope() as scope:

        def handle_then_cut(lines: list[Line]) -> None:
            handed(lines)
            scope.cancel()  # e.g. the deadline, noticed at the pump's next checkpoint

        await pump_lines(receive, handle_then_cut, splitter)
    assert len(handed.lines) == LINES_PER_STEP  # cut after the first slice
    # Not a memory stream's data (only a pipe is read without waiting): the held
    # lines, in slices, then the line not ended by a newline.
    with trio.CancelScope(shield=True):
        assert not await drain_lines(receive, handed, splitter)
    assert handed.lines == [b"l%d" % i for i in range(count)] + [b"partial"]
    assert [len(batch) for batch in handed.batches] == [LINES_PER_STEP, LINES_PER_STEP, 10, 1]


async def test_a_pump_restarted_after_a_cut_hands_over_the_held_lines_first() -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    await send.send_all(b"".join(b"l%d\n" % i for i in range(2 * LINES_PER_STEP)))
    handed = Handed()
    splitter = LineSplitter()
    with trio.CancelScope() as scope:

        def handle_then_cut(lines: list[Line]) -> None:
            handed(lines)
            scope.cancel()

        await pump_lines(receive, handle_then_cut, splitter)
    await send.send_all(b"after\n")
    await send.aclose()
    await pump_lines(receive, handed, splitter)
    assert handed.lines == [b"l%d" % i for i in range(2 * LINES_PER_STEP)] + [b"after"]
