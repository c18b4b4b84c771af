"""``runcast … | head -1``: the reader leaves, runcast stops quietly (exit 141, no traceback).

Real ``runcast`` subprocesses whose stdout reader reads one line and closes the
pipe, as ``head -1`` does. The output is far larger than a pipe holds, so runcast
is certain to write again after the reader left.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import trio.testing
from _live_stack import live_stack

from api.store._recorder import serve_store_recorder
from api.store._store import SessionStore
from events import Publisher, TaskCompleted, TaskQueued, TaskStarted, TaskUsage

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("quiet_server_logs")]

RUNCAST = str(Path(sys.executable).with_name("runcast"))
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
TASKS = 6000  # about 600 kB of `show` table and 900 kB of CSV: well past a pipe's 64 kB


async def record_big_session(path: Path) -> None:
    store = SessionStore.open(path)
    store.begin_session("s-big")
    publisher = Publisher()
    async with trio.open_nursery() as nursery:
        recorder = await nursery.start(
            lambda task_status: serve_store_recorder(
                store, publisher, session_id="s-big", task_status=task_status
            )
        )
        for index in range(TASKS):
            task = f"task-{index:05d}"
            publisher.publish(TaskQueued(task_id=task))
            publisher.publish(TaskStarted(task_id=task))
            publisher.publish(
                TaskUsage(task_id=task, model="m", input_tokens=index, cost_usd=0.001)
            )
            publisher.publish(TaskCompleted(task_id=task, exit_code=0))
            if index % 500 == 0:
                await recorder.wait_caught_up()
        await recorder.wait_caught_up()
        nursery.cancel_scope.cancel()
    store.end_session("s-big", status="finished")
    store.close()


def read_one_line_then_leave(argv: list[str]) -> tuple[bytes, int, bytes]:
    """``runcast ARGV | head -1``: the first line, the exit status and stderr."""
    process = subprocess.Popen(
        [RUNCAST, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
    )
    assert process.stdout is not None
    assert process.stderr is not None
    first = b""
    while not first.endswith(b"\n"):
        byte = process.stdout.read(1)
        if not byte:
            break
        first += byte
    process.stdout.close()
    try:
        err = process.stderr.read()
        status = process.wait(timeout=60)
    finally:
        process.kill()
        process.stderr.close()
    return first, status, err


@pytest.mark.parametrize(
    ("argv", "first"),
    [
        (["show", "s-big"], b"session s-big (finished)"),
        (["export", "s-big"], b"session_id,task_id,seq"),
        (["export", "s-big", "--format", "jsonl"], b'{"session_id": "s-big"'),
    ],
)
async def test_store_commands_stop_quietly_when_the_reader_leaves(
    tmp_path: Path, argv: list[str], first: bytes
) -> None:
    path = tmp_path / "runcast.db"
    await record_big_session(path)
    line, status, err = await trio.to_thread.run_sync(
        read_one_line_then_leave, [*argv, "--store", str(path)]
    )
    assert line.startswith(first)
    assert err == b""  # no "BrokenPipeError", no "Exception ignored"
    assert status == EXIT_BROKEN_PIPE


async def test_watch_stops_quietly_when_the_reader_leaves() -> None:
    with trio.fail_after(60):
        async with live_stack(interval=0.05) as stack:
            feed = stack.start_burner("t1")
            await feed.send(10)
            # watch prints a session line per update (every 0.05 s while t1 runs):
            # one is read, the next written after the reader left fails.
            line, status, err = await trio.to_thread.run_sync(
                read_one_line_then_leave, ["watch", stack.ws_url]
            )
    assert line.startswith(b"connected to ")
    assert err == b""
    assert status == EXIT_BROKEN_PIPE
