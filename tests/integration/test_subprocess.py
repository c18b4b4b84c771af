"""Subprocess tasks against real processes: output, usage, exit codes, and no orphans."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio
from _process_support import alive

from events import Published, Publisher, TaskFailed, TaskOutput, TaskUsage
from executor import CommandSpec, Executor, TaskCancelledError, TaskFailedError, open_executor

pytestmark = pytest.mark.integration

PY = sys.executable

# Ignores SIGTERM, forks a grandchild that ignores it too, writes both pids.
STUBBORN = """
import os, signal, sys, time
if sys.argv[2] == "leader-ignores":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = os.fork()
if child == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(1)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {child}")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(1)
"""


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


async def read_pids(path: Path) -> list[int]:
    pid_file = trio.Path(path)
    while not await pid_file.exists():  # noqa: ASYNC110 - a real child writes it
        await trio.sleep(0.02)
    return [int(pid) for pid in (await pid_file.read_text()).split()]


class Events:
    def __init__(self, publisher: Publisher) -> None:
        self.items: list[Published] = []
        publisher.add_listener(self.items.append)

    def outputs(self, stream: str = "stdout") -> list[TaskOutput]:
        return [
            p.event
            for p in self.items
            if isinstance(p.event, TaskOutput) and p.event.stream == stream
        ]

    def usages(self) -> list[TaskUsage]:
        return [p.event for p in self.items if isinstance(p.event, TaskUsage)]


@pytest.fixture
def publisher() -> Publisher:
    return Publisher()


@pytest.fixture
def events(publisher: Publisher) -> Events:
    return Events(publisher)


@pytest.mark.parametrize("mode", ["leader-ignores", "leader-obeys"])
async def test_cancel_kills_the_whole_group_and_leaves_no_process(
    publisher: Publisher, tmp_path: Path, mode: str
) -> None:
    pid_file = tmp_path / "pids"
    spec = CommandSpec(id="stubborn", command=[PY, "-c", STUBBORN, str(pid_file), mode])
    with trio.fail_after(20):
        async with open_executor(publisher, kill_grace=0.5) as executor:
            handle = executor.submit_command(spec)
            pids = await read_pids(pid_file)
            assert all(alive(pid) for pid in pids)
            started = trio.current_time()
            handle.cancel()
            with pytest.raises(TaskCancelledError):
                await handle.wait()
            elapsed = trio.current_time() - started
    assert not any(alive(pid) for pid in pids)
    assert 0.5 <= elapsed < 5  # SIGTERM was ignored by someone: SIGKILL after the grace
    assert executor.task("stubborn").exit_code is not None


async def test_timeout_terminates_and_fails_with_the_reason(
    publisher: Publisher, events: Events, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    script = "import os,sys,time; open(sys.argv[1],'w').write(str(os.getpid())); time.sleep(60)"
    spec = CommandSpec(id="slow", command=[PY, "-c", script, str(pid_file)], timeout=1.0)
    with trio.fail_after(20):
        async with open_executor(publisher, kill_grace=2.0) as executor:
            handle = executor.submit_command(spec)
            with pytest.raises(TaskFailedError) as caught:
                await handle.wait()
    assert caught.value.timed_out
    [pid] = [int(pid_file.read_text())]
    assert not alive(pid)
    [failed] = [p.event for p in events.items if isinstance(p.event, TaskFailed)]
    assert failed.timed_out
    assert failed.exit_code == -15  # it obeyed SIGTERM


async def test_leftover_background_processes_are_reaped_after_exit(
    publisher: Publisher, events: Events
) -> None:
    spec = CommandSpec(id="bg", command="sleep 300 & echo $!", shell=True)
    with trio.fail_after(20):
        async with open_executor(publisher, kill_grace=1.0) as executor:
            await executor.submit_command(spec).wait()
    [line] = events.outputs()
    assert not alive(int(line.line))
    assert executor.task("bg").state == "completed"


async def test_exit_codes_output_env_and_cwd(
    publisher: Publisher, events: Events, tmp_path: Path
) -> None:
    script = (
        "import os, sys; print(os.environ.get('GREETING'), os.getcwd()); "
        "print('oops', file=sys.stderr); sys.exit(int(sys.argv[1]))"
    )
    with trio.fail_after(20):
        async with open_executor(publisher) as executor:
            ok = executor.submit_command(
                CommandSpec(
                    id="ok",
                    command=[PY, "-c", script, "0"],
                    env={"GREETING": "hello"},
                    cwd=str(tmp_path),
                )
            )
            bad = executor.submit_command(CommandSpec(id="bad", command=[PY, "-c", script, "3"]))
            missing = executor.submit_command(CommandSpec(command=["/nonexistent/agent"]))
            assert await ok.wait() == 0
            with pytest.raises(TaskFailedError, match="exit code 3") as caught:
                await bad.wait()
            assert caught.value.exit_code == 3
            with pytest.raises(TaskFailedError, match="cannot start '/nonexistent/agent'"):
                await missing.wait()
    ok_lines = [o.line for o in events.outputs() if o.task_id == "ok"]
    assert ok_lines == [f"hello {tmp_path}"]
    assert [o.line for o in events.outputs("stderr") if o.task_id == "bad"] == ["oops"]
    assert executor.task("bad").exit_code == 3


async def test_usage_lines_become_usage_and_the_rest_output(
    publisher: Publisher, events: Events, tmp_path: Path
) -> None:
    transcript = tmp_path / "claude.jsonl"
    lines = [
        json.dumps(
            {
                "type": "assistant",
                "message": {
                    "id": "msg_1",
                    "model": "claude-sonnet-4-5",
                    "usage": {"input_tokens": 10, "output_tokens": 5},
                },
            }
        ),
        json.dumps(
            {
                "type": "assistant",
                "message": {
                    "id": "msg_1",
                    "model": "claude-sonnet-4-5",
                    "usage": {"input_tokens": 10, "output_tokens": 5},
                },
            }
        ),
        '{"broken json',
        json.dumps(
            {
                "type": "result",
                "total_cost_usd": 0.5,
                "usage": {"input_tokens": 12, "output_tokens": 40},
            }
        ),
        json.dumps({"usage": {"input_tokens": 1}, "model": "acme-9000"}),
    ]
    transcript.write_text("\n".join(lines) + "\n")
    spec = CommandSpec(id="cc", command=["cat", str(transcript)], model="claude-sonnet-4-5")
    with trio.fail_after(20):
        async with open_executor(publisher) as executor:
            await executor.submit_command(spec).wait()
    info = executor.task("cc")
    assert (info.input_tokens, info.output_tokens) == (13, 40)
    assert info.estimated_cost_usd == pytest.approx(0.5)
    assert info.unpriced_tokens == 1
    assert [u.cost_source for u in events.usages()] == ["computed", "reported", "unpriced"]
    assert [o.line for o in events.outputs()] == ['{"broken json']


async def test_ten_megabyte_line_is_cut_and_counted(publisher: Publisher, events: Events) -> None:
    script = "import sys; sys.stdout.write('x' * 10_000_000 + '\\nafter\\n')"
    with trio.fail_after(20):
        async with open_executor(publisher) as executor:
            await executor.submit_command(CommandSpec(command=[PY, "-c", script])).wait()
    outputs = events.outputs()
    assert outputs[0].truncated
    cut, after = [text for output in outputs for text in output.line.split("\n")]
    assert len(cut) <= 4096
    assert cut.endswith("…[truncated]")
    assert after == "after"
    if len(outputs) == 2:  # "after" came in a read of its own
        assert not outputs[1].truncated
    assert executor.output_lines_truncated == 1


async def test_suspend_mode_stops_and_continues_the_group(
    publisher: Publisher, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    spec = CommandSpec(id="s", command=[PY, "-c", STUBBORN, str(pid_file), "leader-obeys"])
    with trio.fail_after(20):
        async with open_executor(publisher, suspend_on_pause=True, kill_grace=0.5) as executor:
            handle = executor.submit_command(spec)
            pids = await read_pids(pid_file)
            executor.pause()
            await _until(executor, lambda: all(state(pid) == "T" for pid in pids))
            executor.resume()
            await _until(executor, lambda: all(state(pid) != "T" for pid in pids))
            executor.pause()  # cancelling a stopped group still works
            await _until(executor, lambda: all(state(pid) == "T" for pid in pids))
            handle.cancel()
    assert not any(alive(pid) for pid in pids)


async def _until(executor: Executor, condition: object) -> None:
    assert callable(condition)
    while not condition():  # noqa: ASYNC110 - the kernel changes process state
        await trio.sleep(0.02)
