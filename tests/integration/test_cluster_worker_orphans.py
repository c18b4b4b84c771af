"""A SIGKILLed worker's command does not run on: the next worker on the host reaps it.

Worker A runs a long command and is killed with SIGKILL: its command survives (it
runs in a process group of its own). Worker B, started on the same host with the
same state directory, kills it from A's ledger before it runs the task again, and
its rerun completes. Real ``redis-server``, real worker processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
import trio
from _process_support import alive
from _redis_support import RedisServer
from _worker_processes import (
    kinds,
    runcast,
    start_worker,
    state_dir_of,
    stream_frames,
    wait_for,
    write_job,
)

pytestmark = pytest.mark.integration

TIMEOUT = 60
#: Seconds B may take, from its start, to kill A's command.
REAP_WITHIN = 5.0

# The first attempt sleeps for a minute; the rerun says whether the first still runs.
LONG_THEN_QUICK = """
import os, time
pids = [int(p) for p in open('pids').read().split()] if os.path.exists('pids') else []
open('pids', 'a').write(f'{os.getpid()}\\n')
if not pids:
    print('first attempt', flush=True)
    time.sleep(60)
else:
    stat = open(f'/proc/{pids[0]}/stat').read() if os.path.exists(f'/proc/{pids[0]}') else ''
    running = bool(stat) and stat.rsplit(')', 1)[1].split()[0] != 'Z'
    print(f'rerun; first attempt running: {running}', flush=True)
"""


def pids_written(directory: Path) -> list[int]:
    path = directory / "pids"
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def recorded_groups(state: Path) -> dict[int, list[int]]:
    """Per worker pid, the pgids its ledger names."""
    recorded = {}
    for path in state.glob("worker-*.json"):
        ledger = json.loads(path.read_text())
        recorded[ledger["pid"]] = [group["pgid"] for group in ledger["groups"]]
    return recorded


async def test_a_killed_workers_command_is_killed_by_the_next_worker_before_the_rerun(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    workdir = tmp_path / "w"
    job = write_job(tmp_path / "job.toml", [{"id": "long", "code": LONG_THEN_QUICK, "retries": 1}])
    client = own_redis.client()
    await runcast("submit", str(job), "--redis", own_redis.url, "--session", "o", cwd=tmp_path)
    first = await start_worker(workdir, own_redis.url, "o", "first", "--lease", "1")
    try:
        await wait_for(lambda: len(pids_written(workdir)) == 1)
        [orphan] = pids_written(workdir)
        state = state_dir_of(workdir)
        await wait_for(lambda: recorded_groups(state) == {first.process.pid: [orphan]})
        first.kill()
        await first.process.wait()
        await trio.sleep(0.3)
        assert alive(orphan)  # what a kill -9 leaves: the command runs on

        started = time.monotonic()
        second = await start_worker(
            workdir, own_redis.url, "o", "second", "--lease", "1", "--exit-when-idle"
        )
        with trio.fail_after(REAP_WITHIN):
            while alive(orphan):  # noqa: ASYNC110 - another process kills it
                await trio.sleep(0.02)
        reaped_after = time.monotonic() - started
        with trio.fail_after(TIMEOUT):
            assert await second.process.wait() == 0, second.output
    finally:
        with contextlib.suppress(ProcessLookupError, ValueError):
            for pid in pids_written(workdir):
                os.kill(pid, signal.SIGKILL)
    assert reaped_after < REAP_WITHIN
    frames = stream_frames(client, "o")
    assert kinds(frames, "long") == [
        "task_queued",
        "task_started",
        "task_output",
        "task_retrying",
        "task_started",
        "task_output",
        "task_completed",
    ]
    outputs = [f["data"]["line"] for f in frames if f["event"] == "task_output"]
    assert outputs == ["first attempt", "rerun; first attempt running: False"]
    assert "killed a dead worker's command" in second.output
    assert f"pgid={orphan}" in second.output
    assert recorded_groups(state) == {}  # A's ledger removed by B, B's own at its exit


async def test_a_state_directory_others_may_write_is_refused_at_start(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    code, _, err = await runcast(
        "worker", "--redis", redis_server.url, "--session", "refused", "--exit-when-idle",
        cwd=tmp_path, env={"RUNCAST_STATE_DIR": str(shared)},
    )  # fmt: skip
    assert code == 2
    assert f"state directory {shared} (RUNCAST_STATE_DIR) may be written by others" in err
