"""``runcast logs`` end to end (issue 20, part 1): live with --follow against a real
``runcast run``, then the same lines from its store after the run, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from _runcast_process import RUNCAST, run_to_end, start_runcast

pytestmark = pytest.mark.integration

TIMEOUT = 60
PY = sys.executable
# Writes to both streams, then fails with a traceback. Its two pipes are read apart,
# so before writing to the other stream it waits for the test to have seen the line
# before: the order the server reads is then the order written.
TASK = """
import pathlib, sys, time
def after(name):
    while not pathlib.Path(name).exists():
        time.sleep(0.02)
print("starting", flush=True)
after("1")
print("warming up", file=sys.stderr, flush=True)
after("2")
print("line\\twith a tab", flush=True)
after("3")
raise SystemExit("ValueError: the input was bad")
"""
EXPECTED = ["starting", "warming up", "line\twith a tab", "ValueError: the input was bad"]


def _job(tmp_path: Path) -> Path:
    argv = ", ".join(json.dumps(arg) for arg in (PY, "-c", TASK))
    path = tmp_path / "job.toml"
    path.write_text(f'[[task]]\nid = "flaky"\ncommand = [{argv}]\n', encoding="utf-8")
    return path


async def _read_until(stream: trio.abc.ReceiveStream, into: bytearray, text: bytes) -> None:
    while text not in into:
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise AssertionError(f"logs ended before {text!r}: {bytes(into)!r}")
        into += chunk


async def test_follow_live_then_read_the_store_after_the_run(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            runcast = await start_runcast(
                nursery, "run", str(_job(tmp_path)), "--store", str(store), cwd=tmp_path
            )
            url = f"ws://127.0.0.1:{runcast.port}/ws"
            logs = await trio.lowlevel.open_process(
                [RUNCAST, "logs", "flaky", url, "--follow"],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert logs.stdout is not None
            seen = bytearray()
            for step, line in enumerate(EXPECTED[:3], 1):
                await _read_until(logs.stdout, seen, line.encode() + b"\n")
                (tmp_path / str(step)).touch()
            while chunk := await logs.stdout.receive_some(4096):
                seen += chunk
            assert await logs.wait() == 0
            assert await runcast.wait() == 1
        code, stored, err = await run_to_end("logs", "flaky", "--store", str(store), cwd=tmp_path)
        assert code == 0, err
        _, stderr_only, _ = await run_to_end(
            "logs", "flaky", "--store", str(store), "--stream", "stderr", cwd=tmp_path
        )
        _, stamped, _ = await run_to_end(
            "logs", "flaky", "--store", str(store), "--tail", "1", "--timestamps", cwd=tmp_path
        )
        unknown = await run_to_end("logs", "nope", "--store", str(store), cwd=tmp_path)
    # Both streams, in the order the task wrote them, as it wrote them (tab and all).
    assert seen.decode().splitlines() == EXPECTED
    assert stored.splitlines() == EXPECTED
    assert stderr_only.splitlines() == ["warming up", "ValueError: the input was bad"]
    moment, _, text = stamped.rstrip("\n").partition(" ")
    assert text == "ValueError: the input was bad"
    assert moment.endswith("Z")
    assert unknown[0] == 1
    assert f"no session in store {store} ran a task 'nope'" in unknown[2]


async def test_logs_from_a_running_server_without_follow_ends(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            runcast = await start_runcast(nursery, "run", str(_job(tmp_path)), cwd=tmp_path)
            url = f"ws://127.0.0.1:{runcast.port}/ws"
            # The task runs until told: what is kept so far comes back, and logs ends.
            while True:
                code, out, err = await run_to_end("logs", "flaky", url, cwd=tmp_path)
                if "starting" in out:
                    break
                await trio.sleep(0.05)
            unknown = await run_to_end("logs", "nope", url, cwd=tmp_path)
            for step in "123":
                (tmp_path / step).touch()
            await runcast.wait()
    assert code == 0, err
    assert out.splitlines() == EXPECTED[:1]
    assert unknown[0] == 1
    assert "runcast logs: task 'nope': unknown task 'nope' (HTTP 404)" in unknown[2]


async def test_bad_input_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        missing = await run_to_end("logs", "x", "--store", str(tmp_path / "no.db"), cwd=tmp_path)
        follow = await run_to_end("logs", "x", "--store", "a.db", "--follow", cwd=tmp_path)
        session = await run_to_end("logs", "x", "--session", "abc", cwd=tmp_path)
        tail = await run_to_end("logs", "x", "--tail", "0", cwd=tmp_path)
        unreachable = await run_to_end("logs", "x", "ws://127.0.0.1:9/ws", cwd=tmp_path)
    assert missing[0] == 1
    assert f"no store at {tmp_path / 'no.db'}" in missing[2]
    assert follow[0] == 2
    assert "--follow reads a running server" in follow[2]
    assert session[0] == 2
    assert "--session needs --store" in session[2]
    assert tail[0] == 2
    assert "expected a number of lines from 1 to" in tail[2]
    assert unreachable[0] == 3
