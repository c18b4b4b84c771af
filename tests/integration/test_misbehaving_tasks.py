"""Tasks that misbehave, as real subprocesses through the real executor (issue 9).

Each one: the executor stays responsive (a heartbeat task's lateness is
measured), every process is gone afterwards (no zombie: ``/proc`` says so), and
the executor goes on running other tasks.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import structlog
import structlog.testing
import trio
from _process_support import alive

from api.cli._heap import settled_heap
from events import Published, Publisher, TaskOutput, TaskUsage
from executor import CommandSpec, Executor, TaskCancelledError, TaskFailedError, open_executor

pytestmark = pytest.mark.integration

PY = sys.executable
HEARTBEAT = 0.005


def our_zombies() -> list[int]:
    """Zombie children of this process: a subprocess nobody reaped."""
    me = str(os.getpid())
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "Z" and fields[1] == me:
            found.append(int(stat.parent.name))
    return found


async def read_pids(path: Path) -> list[int]:
    pid_file = trio.Path(path)
    while not await pid_file.exists():  # noqa: ASYNC110 - a real child writes it
        await trio.sleep(0.02)
    return [int(pid) for pid in (await pid_file.read_text()).split()]


class StepTimer(trio.abc.Instrument):
    """The longest task step: time in which no other task could run (wall and CPU)."""

    def __init__(self) -> None:
        self.longest = (0.0, 0.0, "")
        self._start = (0.0, 0.0)

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._start = (time.perf_counter(), time.thread_time())

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        wall = time.perf_counter() - self._start[0]
        if wall > self.longest[0]:
            self.longest = (wall, time.thread_time() - self._start[1], task.name)


class Heartbeat:
    """Sleeps ``HEARTBEAT`` s in a loop and keeps the worst lateness.

    ``steps`` says, when it was late, whether a task step held the loop (CPU
    in the trio thread) or the machine did not give the process a CPU.
    """

    def __init__(self) -> None:
        self.worst = 0.0
        self.beats = 0
        self.steps = StepTimer()

    async def run(self) -> None:
        trio.lowlevel.add_instrument(self.steps)
        try:
            while True:
                due = trio.current_time() + HEARTBEAT
                await trio.sleep_until(due)
                self.worst = max(self.worst, trio.current_time() - due)
                self.beats += 1
        finally:
            trio.lowlevel.remove_instrument(self.steps)

    def __str__(self) -> str:
        wall, cpu, task = self.steps.longest
        return (
            f"heartbeat late by {self.worst * 1000:.0f} ms; longest step "
            f"{wall * 1000:.0f} ms ({cpu * 1000:.0f} ms CPU) in {task}"
        )


class Events:
    def __init__(self, publisher: Publisher) -> None:
        self.items: list[Published] = []
        publisher.add_listener(self.items.append)

    def outputs(self, task_id: str) -> list[TaskOutput]:
        return [
            p.event
            for p in self.items
            if isinstance(p.event, TaskOutput) and p.event.task_id == task_id
        ]

    def usages(self, task_id: str) -> list[TaskUsage]:
        return [
            p.event
            for p in self.items
            if isinstance(p.event, TaskUsage) and p.event.task_id == task_id
        ]


async def still_runs_tasks(executor: Executor) -> None:
    """A well-behaved task still runs to completion after the misbehaving one."""
    handle = executor.submit_command(CommandSpec(command=["true"]))
    assert await handle.wait() == 0


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


IGNORES_TERM = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1] + ".tmp", "w").write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(1)
"""


async def test_sigterm_ignored_is_killed_after_the_grace_and_reaped(tmp_path: Path) -> None:
    publisher = Publisher()
    pid_file = tmp_path / "pid"
    heartbeat = Heartbeat()
    spec = CommandSpec(id="deaf", command=[PY, "-c", IGNORES_TERM, str(pid_file)], timeout=1.0)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(heartbeat.run)
            async with open_executor(publisher, kill_grace=0.5) as executor:
                started = trio.current_time()
                handle = executor.submit_command(spec)
                [pid] = await read_pids(pid_file)
                with pytest.raises(TaskFailedError) as caught:
                    await handle.wait()
                elapsed = trio.current_time() - started
                await still_runs_tasks(executor)
            nursery.cancel_scope.cancel()
    assert caught.value.timed_out
    assert executor.task("deaf").exit_code == -9  # SIGTERM ignored: SIGKILL after the grace
    assert 1.5 <= elapsed < 5  # timeout 1 s + grace 0.5 s, then bounded
    assert not alive(pid)
    assert our_zombies() == []
    assert heartbeat.worst < 0.1, str(heartbeat)


# Lines of ``argv[2]`` bytes, written 1 MiB at a time for ``argv[1]`` seconds.
FLOOD = """
import sys, time
size = int(sys.argv[2])
line = b"flood " + b"x" * (size - 7) + b"\\n"
block = line * max(1, (1 << 20) // size)
end = time.monotonic() + float(sys.argv[1])
written = 0
while time.monotonic() < end:
    sys.stdout.buffer.write(block)
    written += len(block)
sys.stderr.write(f"wrote {written}\\n")
"""


class FloodCount:
    """Counts the flood's stdout lines without keeping them (the test must not hold 100,000s)."""

    def __init__(self, publisher: Publisher) -> None:
        self.stdout_lines = 0
        self.stderr: list[str] = []
        publisher.add_listener(self.see)

    def see(self, item: Published) -> None:
        event = item.event
        if isinstance(event, TaskOutput) and event.task_id == "flood":
            if event.stream == "stdout":
                self.stdout_lines += event.lines
            else:
                self.stderr.extend(event.line.split("\n"))


@pytest.mark.parametrize("line_bytes", [100, 256 * 1024])
async def test_stdout_flood_keeps_the_executor_responsive_and_memory_bounded(
    line_bytes: int,
) -> None:
    publisher = Publisher()
    seen = FloodCount(publisher)
    heartbeat = Heartbeat()
    rss_before = rss_kib()
    # As `runcast run` does at start-up: a full collection of the test process's
    # heap (pytest, hypothesis, ...) would otherwise block the loop 100+ ms.
    with trio.fail_after(60), settled_heap():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(heartbeat.run)
            async with open_executor(publisher, concurrency=2) as executor:
                spec = CommandSpec(id="flood", command=[PY, "-c", FLOOD, "3", str(line_bytes)])
                flood = executor.submit_command(spec)
                # Other tasks start and end while the flood runs.
                for _ in range(3):
                    await trio.sleep(0.5)
                    await still_runs_tasks(executor)
                assert await flood.wait() == 0
            nursery.cancel_scope.cancel()
    [wrote] = seen.stderr
    written = int(wrote.split()[1])
    # Every line written was read and published (the pipe held the writer back).
    assert seen.stdout_lines == written // line_bytes
    assert heartbeat.worst < 0.1, str(heartbeat)
    assert heartbeat.beats > 100
    # Bounded: the publisher keeps a bounded history (10,000 events: ~30 MiB of
    # 4 KiB lines), the reader at most a read and a line; ~1 GB went through.
    assert rss_kib() - rss_before < 128 * 1024
    assert our_zombies() == []


async def test_ten_megabyte_line_is_a_counted_visible_cut_in_bounded_memory() -> None:
    publisher = Publisher()
    events = Events(publisher)
    script = (
        "import sys; sys.stdout.write('{\"usage\": \"' + 'y' * 10_000_000 + '\"}\\n');"
        ' print(\'{"usage": {"input_tokens": 7}}\')'
    )
    rss_before = rss_kib()
    with trio.fail_after(30), structlog.testing.capture_logs() as logs:
        async with open_executor(publisher) as executor:
            handle = executor.submit_command(CommandSpec(id="big", command=[PY, "-c", script]))
            assert await handle.wait() == 0
            await still_runs_tasks(executor)
    [cut_log] = [entry for entry in logs if entry["event"] == "output_lines_cut"]
    assert (cut_log["task_id"], cut_log["stream"], cut_log["lines"]) == ("big", "stdout", 1)
    assert cut_log["bytes_dropped"] == 10_000_000 + len('{"usage": ""}') - cut_log["max_line_bytes"]
    cut, *rest = events.outputs("big")
    assert rest == []
    assert cut.truncated
    assert cut.line.startswith('{"usage": "yyyy')
    assert len(cut.line) <= 4096
    assert executor.output_lines_truncated == 1
    # The line after it is read as usage: the reader went on.
    assert [u.input_tokens for u in events.usages("big")] == [7]
    # Kept at most the 4 MiB line limit (twice, as a copy), never the 10 MB line.
    assert rss_kib() - rss_before < 40 * 1024


@pytest.mark.parametrize(
    ("tail", "usage", "output"),
    [
        ('{"usage": {"input_tokens": 5}}', [5], []),  # complete JSON: parsed
        ('{"usage": {"input_tok', [], ['{"usage": {"input_tok']),  # cut JSON: output
        ("half a line", [], ["half a line"]),
    ],
)
async def test_exit_mid_line_parses_or_reports_the_last_line(
    tail: str, usage: list[int], output: list[str]
) -> None:
    publisher = Publisher()
    events = Events(publisher)
    script = f"import sys; sys.stdout.write('first\\n' + {tail!r}); sys.stdout.flush()"
    with trio.fail_after(20):
        async with open_executor(publisher) as executor:
            handle = executor.submit_command(CommandSpec(id="mid", command=[PY, "-c", script]))
            assert await handle.wait() == 0
            await still_runs_tasks(executor)
    assert [o.line for o in events.outputs("mid")] == ["first", *output]
    assert [u.input_tokens for u in events.usages("mid")] == usage
    assert our_zombies() == []


# A child in the group and a daemon that left it (double fork + setsid), both
# holding stdout open and ignoring SIGTERM; the leader writes their pids.
FORKS = """
import os, signal, sys, time
def linger():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(1)
child = os.fork()
if child == 0:
    linger()
reader, writer = os.pipe()
if os.fork() == 0:
    os.setsid()
    daemon = os.fork()
    if daemon == 0:
        linger()
    os.write(writer, str(daemon).encode())
    os._exit(0)
daemon = int(os.read(reader, 32))
open(sys.argv[1] + ".tmp", "w").write(f"{child} {daemon}")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
print("started", flush=True)
if sys.argv[2] == "exit":
    sys.exit(0)
while True:
    time.sleep(1)
"""


@pytest.mark.parametrize("how", ["exit", "cancel"])
async def test_forked_children_holding_stdout_are_stopped_and_the_task_ends(
    tmp_path: Path, how: str
) -> None:
    publisher = Publisher()
    pid_file = tmp_path / "pids"
    heartbeat = Heartbeat()
    spec = CommandSpec(id="forks", command=[PY, "-c", FORKS, str(pid_file), how])
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(heartbeat.run)
            async with open_executor(publisher, kill_grace=0.5) as executor:
                handle = executor.submit_command(spec)
                pids = await read_pids(pid_file)
                assert all(alive(pid) for pid in pids)
                started = trio.current_time()
                if how == "exit":
                    assert await handle.wait() == 0
                else:
                    handle.cancel()
                    with pytest.raises(TaskCancelledError):
                        await handle.wait()
                elapsed = trio.current_time() - started
                await still_runs_tasks(executor)
            nursery.cancel_scope.cancel()
    assert elapsed < 10  # bounded: no waiting for an end of file an orphan holds back
    assert not any(alive(pid) for pid in pids)
    assert our_zombies() == []
    assert heartbeat.worst < 0.1, str(heartbeat)


# A daemon that left the group (double fork + setsid) and floods stdout,
# ignoring SIGTERM; the leader writes its pid, then waits to be timed out.
FLOODING_DAEMON = """
import fcntl, os, signal, sys, time
reader, writer = os.pipe()
if os.fork() == 0:
    os.setsid()
    daemon = os.fork()
    if daemon == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # The largest pipe it may have, refilled as fast as it is read.
        size = fcntl.fcntl(1, fcntl.F_SETPIPE_SZ, 1 << 20)
        block = (b"x" * 1023 + b"\\n") * (size // 1024)
        while True:
            os.write(1, block)
    os.write(writer, str(daemon).encode())
    os._exit(0)
daemon = int(os.read(reader, 32))
open(sys.argv[1] + ".tmp", "w").write(str(daemon))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(1)
"""


async def test_a_timed_out_task_reads_what_is_left_but_not_an_escaped_flood(
    tmp_path: Path,
) -> None:
    """After a cut, the pipes are read without waiting and at most DRAIN_MAX_BYTES
    each: a writer that escaped the group cannot keep the task from ending."""
    publisher = Publisher()
    pid_file = tmp_path / "pid"
    heartbeat = Heartbeat()
    spec = CommandSpec(id="flood", command=[PY, "-c", FLOODING_DAEMON, str(pid_file)], timeout=1.0)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(heartbeat.run)
            async with open_executor(publisher, kill_grace=0.5) as executor:
                handle = executor.submit_command(spec)
                [daemon] = await read_pids(pid_file)
                with pytest.raises(TaskFailedError) as caught:
                    await handle.wait()
                await still_runs_tasks(executor)
            nursery.cancel_scope.cancel()
    assert caught.value.timed_out
    assert not alive(daemon)
    assert our_zombies() == []
    assert heartbeat.worst < 0.1, str(heartbeat)
