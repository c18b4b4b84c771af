"""The real ``runcast status`` and ``watch`` on a pseudo-terminal: drawn with rich.

Piped, they print plain lines (``test_cli_clients``); on a terminal ``status`` draws
a styled table and ``watch`` a live display, which Ctrl-C ends with exit 130, no
traceback and the cursor shown again.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import structlog
import trio
from _live_stack import live_stack
from _terminal_support import styled, without_drawing

pytestmark = pytest.mark.integration

RUNCAST = str(Path(sys.executable).with_name("runcast"))
ROWS, COLUMNS = 30, 150


@pytest.fixture(autouse=True)
def quiet_server_logs() -> Iterator[None]:
    with structlog.testing.capture_logs():
        yield


@contextmanager
def pseudo_terminal() -> Iterator[tuple[trio.lowlevel.FdStream, int]]:
    """The (master stream, slave fd) of a ``ROWS`` x ``COLUMNS`` pseudo-terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    stream = trio.lowlevel.FdStream(master)
    try:
        yield stream, slave
    finally:
        os.close(slave)


def _terminal_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    return {**env, "TERM": "xterm-256color"}


async def _read_some(stream: trio.lowlevel.FdStream, into: bytearray) -> None:
    chunk = await stream.receive_some()
    assert chunk, f"the command stopped writing: {bytes(into)!r}"
    into += chunk


async def _read_until(stream: trio.lowlevel.FdStream, into: bytearray, text: bytes) -> None:
    while text not in into:
        await _read_some(stream, into)


async def test_status_on_a_terminal_draws_a_styled_table() -> None:
    async with live_stack() as stack:
        stack.start_burner("t1", "[bold]alpha")
        output = bytearray()
        with pseudo_terminal() as (terminal, slave), trio.fail_after(30):
            process = await trio.lowlevel.open_process(
                [RUNCAST, "status", stack.ws_url], stdout=slave, env=_terminal_env()
            )
            assert await process.wait() == 0
            with trio.move_on_after(2):
                await _read_until(terminal, output, b"running")
    drawn = output.decode()
    assert styled(drawn)
    lines = [line.rstrip() for line in without_drawing(drawn).splitlines()]
    assert lines[0].startswith("session ")
    assert lines[2].split()[:3] == ["TASK", "NAME", "STATE"]
    assert lines[4].split()[:3] == ["t1", "[bold]alpha", "running"]  # markup shown as text


def _last_frame(output: bytearray) -> list[str]:
    """The last screen ``watch`` drew (each redraw starts at its heading)."""
    shown = without_drawing(output.decode(errors="replace"))
    return ("runcast watch" + shown.split("runcast watch")[-1]).splitlines()


async def test_watch_on_a_terminal_is_live_and_ctrl_c_exits_130_with_the_cursor_back() -> None:
    async with live_stack() as stack:
        stack.start_burner("t1", "alpha")
        output = bytearray()
        with pseudo_terminal() as (terminal, slave), trio.fail_after(30):
            process = await trio.lowlevel.open_process(
                [RUNCAST, "watch", stack.ws_url],
                stdout=slave,
                stderr=subprocess.PIPE,
                env=_terminal_env(),
            )
            try:
                # A whole screen: the session line and the task's row.
                while not (
                    len(frame := _last_frame(output)) >= 6
                    and frame[1].startswith("session ")
                    and "alpha" in frame[5]
                ):
                    await _read_some(terminal, output)
                assert output.startswith(b"\x1b[?25l")  # the live display hid the cursor
                process.send_signal(signal.SIGINT)
                assert await process.wait() == 130
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            assert process.stderr is not None
            err = await process.stderr.receive_some()
            with trio.move_on_after(2):
                await _read_until(terminal, output, b"\x1b[?25h")
    assert err == b""  # quiet: no traceback
    assert output.rstrip(b"\r\n").endswith(b"\x1b[?25h")  # the cursor is shown again
    frame = _last_frame(output)
    assert frame[0] == f"runcast watch {stack.ws_url} - connected to {stack.ws_url}"
    assert frame[2] == "running tasks: 1"
    assert frame[3].split()[:2] == ["TASK", "NAME"]
    assert frame[5].split()[:2] == ["t1", "alpha"]
