"""The CLI clients against a live runcast server on loopback.

Commands run in-process (their handler in a thread, as ``runcast`` would run it)
and as real ``runcast`` subprocesses for the exit codes.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
import trio
from _client_support import run_handler
from _live_stack import OPERATOR_TOKEN, VIEWER_TOKEN, LiveStack, eventually, live_stack
from _terminal_support import as_terminal, without_drawing

from api.clients._connection import Backoff
from api.clients._watch import Screen, watch

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def quiet_server_logs() -> Iterator[None]:
    """The in-process server logs with structlog; keep that out of the captured output."""
    with structlog.testing.capture_logs():
        yield


RUNCAST = str(Path(sys.executable).with_name("runcast"))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until_usage_seen(stack: LiveStack, input_tokens: int) -> None:
    await eventually(lambda: stack.broadcaster.snapshot().input_tokens >= input_tokens)


async def test_status_shows_the_session_and_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(30):
        async with live_stack(tokens=True) as stack:
            feed = stack.start_burner("t1", "alpha")
            await feed.send(100)
            await until_usage_seen(stack, 100)
            token = ["--token", VIEWER_TOKEN]

            code, text = await run_handler(["status", stack.ws_url, *token], capsys)
            assert code == 0, text
            lines = text.splitlines()
            assert lines[0].startswith("session ")
            assert "tokens 160 (in 100 out 10 cache r50/w0)" in lines[0]
            assert "running 1 queued 0 done 0 failed 0" in lines[0]
            assert lines[2].split()[:3] == ["TASK", "NAME", "STATE"]
            assert lines[3].split()[:4] == ["t1", "alpha", "running", "1"]
            assert "in 100 out 10 cache 50/0" in lines[3]

            code, text = await run_handler(["status", stack.ws_url, "--json", *token], capsys)
            assert code == 0, text
            status = json.loads(text)
            assert status["session"]["input_tokens"] == 100
            assert status["session"]["total_tokens"] == 160
            assert [row["task_id"] for row in status["tasks"]] == ["t1"]
            assert status["tasks"][0]["state"] == "running"


async def test_operator_commands_round_trip(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(30):
        async with live_stack(tokens=True) as stack:
            stack.start_burner("t1")
            url, token = stack.ws_url, ["--token", OPERATOR_TOKEN]

            code, text = await run_handler(["pause", url, *token], capsys)
            assert (code, text.strip()) == (0, "pause: paused")
            assert stack.executor.is_paused

            code, text = await run_handler(["resume", url, *token], capsys)
            assert (code, text.strip()) == (0, "resume: resumed")
            assert not stack.executor.is_paused

            code, text = await run_handler(["budget", "set", "5", url, *token], capsys)
            assert code == 0, text
            assert text.strip().endswith("(budget $5.00)")
            assert stack.executor.budget_usd == 5.0

            code, text = await run_handler(["cancel", "t1", url, *token], capsys)
            assert code == 0, text
            assert text.startswith("cancel t1: ")
            with trio.fail_after(5):
                await eventually(lambda: stack.executor.task("t1").state == "cancelled")


async def test_error_replies_and_refusals(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(30):
        async with live_stack(tokens=True) as stack:
            url = stack.ws_url

            argv = ["cancel", "nope", url, "--token", OPERATOR_TOKEN]
            code, text = await run_handler(argv, capsys)
            assert code == 1
            assert text.startswith("runcast cancel: server error: ")
            assert "nope" in text
            assert len(text.splitlines()) == 1

            code, text = await run_handler(["pause", url, "--token", VIEWER_TOKEN], capsys)
            assert code == 1
            assert "forbidden" in text
            assert not stack.executor.is_paused

            for argv in (["pause", url, "--token", "wrong"], ["status", url], ["watch", url]):
                code, text = await run_handler(argv, capsys)
                assert code == 4, (argv, text)
                assert "refused (401" in text
                assert len(text.splitlines()) == 1

    code, text = await run_handler(["status", f"ws://127.0.0.1:{closed_port()}/ws"], capsys)
    assert code == 3
    assert "cannot connect" in text
    assert len(text.splitlines()) == 1


class LineSink(io.StringIO):
    """A TextIO handing each complete line to a channel, so a test can wait for lines."""

    def __init__(self, lines: trio.MemorySendChannel[str]) -> None:
        super().__init__()
        self.lines = lines
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *complete, self.pending = self.pending.split("\n")
        for line in complete:
            self.lines.send_nowait(line)
        return len(text)


async def next_line_with(lines: trio.MemoryReceiveChannel[str], text: str) -> str:
    async for line in lines:
        if text in line:
            return line
    raise AssertionError(f"watch ended before printing {text!r}")


async def test_watch_follows_live_and_reconnects_after_a_restart() -> None:
    send, lines = trio.open_memory_channel[str](1000)
    screen = Screen(LineSink(send), redraw=False)
    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            async with live_stack() as stack:
                port = stack.port
                feed = stack.start_burner("t1", "alpha")
                backoff = Backoff(initial=0.1, maximum=0.5)
                nursery.start_soon(lambda: watch(stack.ws_url, None, screen, backoff=backoff))
                await next_line_with(lines, f"connected to {stack.ws_url}")
                await next_line_with(lines, "session ")
                await feed.send(1000)
                line = await next_line_with(lines, "tokens 1,600 ")
                assert "running 1 queued 0" in line
            # The server is gone: watch says so, then finds the new one on the same port.
            await next_line_with(lines, "reconnecting in ")
            async with live_stack(port=port) as again:
                again.start_burner("t2", "beta")
                await next_line_with(lines, "connected to ")
                await next_line_with(lines, "server restarted: new session")
                line = await next_line_with(lines, "running 1 ")
                assert "tokens 0 " in line
                nursery.cancel_scope.cancel()


async def test_watch_redraws_in_place_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = as_terminal(monkeypatch, width=160, height=30)
    screen = Screen(terminal, redraw=True)

    def last_frame() -> list[str]:
        # rich's live display redraws from the heading: the last one starts the last frame.
        shown = without_drawing(terminal.getvalue())
        return ("runcast watch" + shown.split("runcast watch")[-1]).splitlines()

    with trio.fail_after(30):
        async with live_stack() as stack, trio.open_nursery() as nursery:
            feed = stack.start_burner("t1", "alpha")
            await feed.send(300)
            await until_usage_seen(stack, 300)
            nursery.start_soon(watch, stack.ws_url, None, screen)
            await eventually(lambda: len(last_frame()) == 6 and "alpha" in last_frame()[5])
            nursery.cancel_scope.cancel()
    screen.close()
    assert terminal.getvalue().startswith("\x1b[?25l")  # the live display's cursor hide
    assert terminal.getvalue().endswith("\x1b[?25h")  # and the cursor back at the end
    last = last_frame()
    assert last[0] == f"runcast watch {stack.ws_url} - connected to {stack.ws_url}"
    assert last[1].startswith("session ")
    assert "in 300" in last[1]
    assert last[2] == "running tasks: 1"
    assert last[3].split()[:2] == ["TASK", "NAME"]
    assert last[5].split()[:2] == ["t1", "alpha"]


# -- the real ``runcast`` executable -------------------------------------------------


async def runcast(*argv: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(30):
        return await trio.run_process(
            [RUNCAST, *argv], capture_stdout=True, capture_stderr=True, check=False
        )


async def test_runcast_exit_codes() -> None:
    async with live_stack(tokens=True) as stack:
        url, op = stack.ws_url, OPERATOR_TOKEN
        done = await runcast("pause", url, "--token", op)
        assert (done.returncode, done.stdout) == (0, b"pause: paused\n")
        done = await runcast("cancel", "nope", url, "--token", op)
        assert done.returncode == 1
        assert done.stderr.count(b"\n") == 1
        done = await runcast("resume", url, "--token", "wrong")
        assert done.returncode == 4
        assert b"refused (401" in done.stderr
        done = await runcast("status", url, "--json", "--token", op)
        assert done.returncode == 0
        assert json.loads(done.stdout)["session"]["is_paused"] is True
    done = await runcast("status", f"ws://127.0.0.1:{closed_port()}/ws")
    assert done.returncode == 3
    assert done.stderr.startswith(b"runcast status: ")
    assert done.stderr.count(b"\n") == 1


async def test_runcast_watch_prints_lines_when_piped() -> None:
    async with live_stack() as stack:
        stack.start_burner("t1", "alpha")
        process = await trio.lowlevel.open_process(
            [RUNCAST, "watch", stack.ws_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert process.stdout is not None
        try:
            with trio.fail_after(30):
                received = b""
                while b"running 1 " not in received:
                    chunk = await process.stdout.receive_some()
                    assert chunk, "watch exited early"
                    received += chunk
                process.send_signal(signal.SIGINT)
                assert await process.wait() == 130
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert b"\x1b[" not in received
    assert received.startswith(f"connected to {stack.ws_url}\n".encode())


async def test_runcast_status_into_a_closed_pipe_is_quiet() -> None:
    async with live_stack() as stack:
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before runcast writes (like `| head`)
        try:
            with trio.fail_after(30):
                done = await trio.run_process(
                    [RUNCAST, "status", stack.ws_url],
                    stdout=write_end,
                    capture_stderr=True,
                    check=False,
                )
        finally:
            os.close(write_end)
    # 141 = 128 + SIGPIPE, what a shell reports for any writer whose reader left.
    assert (done.returncode, done.stderr) == (141, b"")
