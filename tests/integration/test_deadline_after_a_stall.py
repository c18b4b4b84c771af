"""A command that ended while the event loop was stalled past its deadline (issue 17, item 5).

After SIGSTOP/SIGCONT, ``epoll_wait`` returns EINTR and Python gives back no
events, so trio expires the deadline before it has seen the command's output
or its exit.  Here the stall is made deterministic: a real child waits for a
signal; an instrument holds the loop right after its I/O check (where the
EINTR leaves it), lets the child print its usage and exit (or stay), and moves
the ``MockClock`` past the deadline; then the loop expires the deadline.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing
from _runcast_process import run_to_end, start_runcast

from events import (
    Published,
    Publisher,
    TaskCompleted,
    TaskFailed,
    TaskOutput,
    TaskRetrying,
    TaskUsage,
)
from executor import CommandSpec, TaskFailedError, open_executor

pytestmark = pytest.mark.integration

PY = sys.executable
TIMEOUT = 10.0  # virtual seconds: the MockClock only moves when the stall moves it
USAGE = {"usage": {"input_tokens": 1000, "output_tokens": 200}, "model": "claude-sonnet-4-5"}

# Says "ready PID" on stderr, waits for SIGUSR1, prints its usage, then exits
# with argv[1] ("stay": writes the marker argv[2] and sleeps instead).
CHILD = f"""
import os, signal, sys, time
signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGUSR1}})
print("ready", os.getpid(), file=sys.stderr, flush=True)
signal.sigwait({{signal.SIGUSR1}})
print({json.dumps(USAGE)!r}, flush=True)
if sys.argv[1] == "stay":
    open(sys.argv[2], "w").close()
    time.sleep(600)
sys.exit(int(sys.argv[1]))
"""

ATTEMPT_ENDS = (TaskCompleted, TaskFailed, TaskRetrying)


class Watch:
    """The child's pid once it is ready, and the first end of an attempt."""

    def __init__(self, publisher: Publisher) -> None:
        self.ready = trio.Event()
        self.ended = trio.Event()
        self.pid = 0
        self.first_end: object = None
        self.usages: list[TaskUsage] = []
        publisher.add_listener(self._see)

    def _see(self, item: Published) -> None:
        event = item.event
        if isinstance(event, TaskOutput) and event.line.startswith("ready "):
            self.pid = int(event.line.split()[1])
            self.ready.set()
        elif isinstance(event, TaskUsage):
            self.usages.append(event)
        elif isinstance(event, ATTEMPT_ENDS) and not self.ended.is_set():
            self.first_end = event
            self.ended.set()


class StallAfterIoWait(trio.abc.Instrument):
    """Holds the loop once, right after it looked for I/O, while ``stall`` runs."""

    def __init__(self, stall: Callable[[], None]) -> None:
        self._stall = stall
        self.error: BaseException | None = None
        self.done = False

    def after_io_wait(self, timeout: float) -> None:
        trio.lowlevel.remove_instrument(self)
        try:
            self._stall()
        except BaseException as exc:  # an instrument's error would only be logged
            self.error = exc
        self.done = True


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Block the event loop (the stall) until ``condition``: real seconds, bounded."""
    give_up = time.monotonic() + 20
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.005)


def has_exited(pid: int) -> bool:
    """Exited, left for its parent to reap (WNOWAIT): trio still sees it as unreaped."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return info is not None


async def stall_past_the_deadline(
    clock: trio.testing.MockClock, watch: Watch, until: Callable[[], bool], what: str
) -> None:
    """Let the child go and move the clock past the deadline, unseen by the loop."""
    await watch.ready.wait()
    await trio.testing.wait_all_tasks_blocked()  # the pumps and the exit wait are parked

    def stall() -> None:
        os.kill(watch.pid, signal.SIGUSR1)
        wait_until(until, what)
        clock.jump(TIMEOUT + 1)

    instrument = StallAfterIoWait(stall)
    trio.lowlevel.add_instrument(instrument)
    # This task is runnable: the next I/O check does not wait, then the stall.
    await trio.lowlevel.checkpoint()
    assert instrument.done
    assert instrument.error is None, instrument.error


def command(tmp_path: Path, exit_with: str, *, retries: int) -> CommandSpec:
    argv = [PY, "-c", CHILD, exit_with, str(tmp_path / "usage-written")]
    return CommandSpec(id="t", command=argv, timeout=TIMEOUT, retries=retries)


@pytest.mark.parametrize("retries", [0, 1])
async def test_a_command_that_exited_during_the_stall_completes_with_its_usage(
    mock_clock: trio.testing.MockClock, tmp_path: Path, retries: int
) -> None:
    publisher = Publisher()
    watch = Watch(publisher)
    async with open_executor(publisher, kill_grace=1.0) as executor:
        handle = executor.submit_command(command(tmp_path, "0", retries=retries))
        await stall_past_the_deadline(
            mock_clock, watch, lambda: has_exited(watch.pid), "the child's exit"
        )
        await watch.ended.wait()
        # Not ``task_retrying ... timed out``: the attempt ended as it ended.
        assert isinstance(watch.first_end, TaskCompleted), watch.first_end
        assert await handle.wait() == 0
    info = executor.task("t")
    assert (info.state, info.attempts, info.exit_code) == ("completed", 1, 0)
    assert (info.input_tokens, info.output_tokens) == (1000, 200)
    assert [(u.input_tokens, u.output_tokens) for u in watch.usages] == [(1000, 200)]
    assert mock_clock.current_time() > TIMEOUT  # the deadline had passed


async def test_a_command_that_failed_during_the_stall_fails_by_its_exit_code(
    mock_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    publisher = Publisher()
    watch = Watch(publisher)
    async with open_executor(publisher, kill_grace=1.0) as executor:
        handle = executor.submit_command(command(tmp_path, "3", retries=0))
        await stall_past_the_deadline(
            mock_clock, watch, lambda: has_exited(watch.pid), "the child's exit"
        )
        with pytest.raises(TaskFailedError) as caught:
            await handle.wait()
    assert not caught.value.timed_out
    assert caught.value.exit_code == 3
    assert isinstance(watch.first_end, TaskFailed)
    assert (watch.first_end.timed_out, watch.first_end.error) == (False, "exit code 3")
    assert executor.task("t").input_tokens == 1000


async def test_a_command_still_running_at_the_deadline_times_out_with_what_it_wrote(
    mock_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    publisher = Publisher()
    watch = Watch(publisher)
    written = tmp_path / "usage-written"
    async with open_executor(publisher, kill_grace=1.0) as executor:
        handle = executor.submit_command(command(tmp_path, "stay", retries=0))
        await stall_past_the_deadline(mock_clock, watch, written.exists, "the usage line")
        with pytest.raises(TaskFailedError) as caught:
            await handle.wait()
    assert caught.value.timed_out
    assert caught.value.exit_code == -signal.SIGTERM
    # Read before the timeout was declared: the spending is counted.
    assert [(u.input_tokens, u.output_tokens) for u in watch.usages] == [(1000, 200)]
    assert executor.task("t").input_tokens == 1000


# -- the same through a real ``runcast run``, stopped with SIGSTOP --------------

RUN_TIMEOUT = 3  # the job file's timeout: seconds of the real clock
# Writes its pid, waits for the file "go", prints its usage and exits 0.
WAITS_FOR_GO = f"""
import os, pathlib, sys, time
here, me = pathlib.Path(sys.argv[1]), sys.argv[2]
(here / (me + ".tmp")).write_text(str(os.getpid()))
(here / (me + ".tmp")).rename(here / (me + ".pid"))
while not (here / "go").exists():
    time.sleep(0.01)
print({json.dumps(USAGE)!r})
"""


def job_file(tmp_path: Path) -> Path:
    lines = []
    for task_id, retries in (("once", 0), ("twice", 1)):
        argv = ", ".join(
            json.dumps(arg) for arg in (PY, "-c", WAITS_FOR_GO, str(tmp_path), task_id)
        )
        lines += [
            "[[task]]",
            f'id = "{task_id}"',
            f"command = [{argv}]",
            f"timeout = {RUN_TIMEOUT}",
            f"retries = {retries}",
        ]
    path = tmp_path / "job.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def pid_of(path: Path) -> int:
    pid_file = trio.Path(path)
    while not await pid_file.exists():  # noqa: ASYNC110 - a real child writes it
        await trio.sleep(0.01)
    return int(await pid_file.read_text())


def zombie(pid: int) -> bool:
    """Exited, not yet reaped by its (stopped) parent."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


async def test_runcast_stopped_past_the_deadline_keeps_finished_attempts(tmp_path: Path) -> None:
    """SIGSTOP runcast while both tasks print their usage and exit; SIGCONT after
    their deadline: both completed on attempt 1, usage counted and stored."""
    store = tmp_path / "runcast.db"
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            runcast = await start_runcast(
                nursery, "run", str(job_file(tmp_path)), "--store", str(store), cwd=tmp_path
            )
            pids = [await pid_of(tmp_path / f"{task}.pid") for task in ("once", "twice")]
            # Both attempts started before their pid files existed.
            deadlines_passed = trio.current_time() + RUN_TIMEOUT + 0.2
            runcast.signal(signal.SIGSTOP)
            try:
                (tmp_path / "go").touch()
                while not all(zombie(pid) for pid in pids):  # noqa: ASYNC110 - real processes
                    await trio.sleep(0.01)
                await trio.sleep_until(deadlines_passed)
            finally:
                runcast.signal(signal.SIGCONT)
            code = await runcast.wait()
    assert code == 0, runcast.stderr.decode()
    logged = [json.loads(line) for line in runcast.stderr.decode().splitlines()]
    # Both ends were noticed only after the deadline: the cut, not the pumps, saw them.
    assert sorted(e["task_id"] for e in logged if e["event"] == "exited_before_cut") == [
        "once",
        "twice",
    ]
    table = runcast.output[runcast.output.index("TASK") :].splitlines()
    assert [row.split()[:5] for row in table[1:3]] == [
        ["once", "completed", "1", table[1].split()[3], "1,000"],
        ["twice", "completed", "1", table[2].split()[3], "1,000"],
    ]
    assert "tokens: 2,400 (in 2,000, out 400" in runcast.output
    session_id = runcast.output.rsplit("session: ", 1)[1].split()[0]
    code, shown, err = await run_to_end(
        "show", "--json", "--store", str(store), session_id, cwd=tmp_path
    )
    assert code == 0, err
    stored = {task["task_id"]: task for task in json.loads(shown)["tasks"]}
    for task_id in ("once", "twice"):
        task = stored[task_id]
        assert (task["state"], task["attempts"], task["exit_code"]) == ("completed", 1, 0)
        assert (task["usage"]["input_tokens"], task["usage"]["output_tokens"]) == (1000, 200)
