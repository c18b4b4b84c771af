"""A worker through a Redis restart and a graceful stop, as real processes."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import trio
from _redis_support import RedisServer
from _worker_processes import kinds, runcast, start_worker, stream_frames, wait_for, write_job

pytestmark = pytest.mark.integration

TIMEOUT = 60


USAGE_EVERY_TENTH = (
    "import json, time\n"
    "for i in range(12):\n"
    "    print(json.dumps({'usage': {'input_tokens': 10, 'output_tokens': 1}, 'model': 'm',"
    " 'cost_usd': 0.001}), flush=True)\n"
    "    time.sleep(0.1)\n"
)


async def test_a_redis_restart_mid_task_loses_and_doubles_nothing(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    job = write_job(tmp_path / "job.toml", [{"id": "long", "code": USAGE_EVERY_TENTH}])
    await runcast("submit", str(job), "--redis", own_redis.url, "--session", "r", cwd=tmp_path)
    worker = await start_worker(tmp_path / "w", own_redis.url, "r", "one", "--exit-when-idle")
    client = own_redis.client()
    await wait_for(lambda: "task_usage" in kinds(stream_frames(client, "r")))
    own_redis.stop()  # SIGTERM: the AOF is flushed, then replayed at start
    await trio.sleep(0.5)  # the task prints on; the worker buffers and retries
    own_redis.start()
    with trio.fail_after(TIMEOUT):
        assert await worker.process.wait() == 0, worker.output
    frames = stream_frames(own_redis.client(), "r")
    assert kinds(frames) == ["task_queued", "task_started", *["task_usage"] * 12, "task_completed"]
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert "Redis unreachable: buffering events" in worker.output


async def test_a_graceful_stop_hands_back_a_task_waiting_to_retry(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    # Fails its first attempt (its marker is new), then waits out the 1 s retry back-off.
    flaky = (
        "import os, sys\n"
        "if not os.path.exists('flaky'):\n    open('flaky', 'w'); sys.exit(1)\n"
        "print('second time lucky')\n"
    )
    job = write_job(tmp_path / "job.toml", [{"id": "flaky", "code": flaky, "retries": 1}])
    await runcast("submit", str(job), "--redis", own_redis.url, "--session", "g", cwd=tmp_path)
    first = await start_worker(tmp_path / "w", own_redis.url, "g", "first")
    client = own_redis.client()
    await wait_for(lambda: "task_retrying" in kinds(stream_frames(client, "g")))
    first.process.send_signal(signal.SIGTERM)
    with trio.fail_after(TIMEOUT):
        assert await first.process.wait() == 0, first.output
    assert "handed back waiting tasks" in first.output
    assert client.hlen("runcast:{g}:leases") == 0
    assert client.zcard("runcast:{g}:workers") == 0  # it said goodbye
    second = await start_worker(tmp_path / "w", own_redis.url, "g", "second", "--exit-when-idle")
    with trio.fail_after(TIMEOUT):
        assert await second.process.wait() == 0, second.output
    frames = stream_frames(client, "g")
    assert kinds(frames) == [
        "task_queued",
        "task_started",
        "task_retrying",
        "task_started",
        "task_output",
        "task_completed",
    ]
    assert [f["data"].get("attempt") for f in frames if f["event"] == "task_started"] == [1, 2]
    assert frames[3]["src"].startswith("w:second:")


async def test_the_budget_counts_across_workers_and_stops_them_all(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    costs_a_cent = (
        "import json, time\n"
        "print(json.dumps({'usage': {'input_tokens': 10}, 'model': 'm', 'cost_usd': 0.01}),"
        " flush=True)\n"
        "time.sleep(0.3)\n"
    )
    job = write_job(
        tmp_path / "job.toml", [{"id": f"t{i}", "code": costs_a_cent} for i in range(8)]
    )
    submit = ("submit", str(job), "--redis", own_redis.url, "--session", "b")
    await runcast(*submit, "--budget-usd", "0.025", cwd=tmp_path)
    workers = [
        await start_worker(tmp_path / "w", own_redis.url, "b", name, "--concurrency", "1")
        for name in ("one", "two")
    ]
    client = own_redis.client()
    await wait_for(lambda: "budget_exhausted" in kinds(stream_frames(client, "b")))
    await trio.sleep(0.5)  # what was claimed before the crossing may still start
    started = kinds(stream_frames(client, "b")).count("task_started")
    await trio.sleep(1.0)
    frames = stream_frames(client, "b")
    assert kinds(frames).count("task_started") == started < 8
    session = [f["event"] for f in frames if f["task_id"] == "*"]
    assert session == ["budget_changed", "budget_warning", "budget_exhausted", "executor_paused"]
    paused = next(f for f in frames if f["event"] == "executor_paused")
    assert paused["data"]["by"] == "budget"
    assert client.hget("runcast:{b}:state", "paused_by") == "budget"
    for worker in workers:
        worker.process.send_signal(signal.SIGTERM)
    with trio.fail_after(TIMEOUT):
        assert [await w.process.wait() for w in workers] == [0, 0]


async def test_a_second_signal_stops_at_once_and_leaves_the_attempt_to_the_next_claimer(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    sleeps = "import time\nprint('started', flush=True)\ntime.sleep(30)\n"
    wakes = "import os\nif os.path.exists('again'):\n    raise SystemExit(0)\nopen('again', 'w')\n"
    job = write_job(tmp_path / "job.toml", [{"id": "t", "code": wakes + sleeps, "retries": 1}])
    await runcast("submit", str(job), "--redis", own_redis.url, "--session", "a", cwd=tmp_path)
    first = await start_worker(tmp_path / "w", own_redis.url, "a", "first", "--lease", "1")
    client = own_redis.client()
    await wait_for(lambda: "task_output" in kinds(stream_frames(client, "a")))
    first.process.send_signal(signal.SIGTERM)
    await trio.sleep(0.2)
    first.process.send_signal(signal.SIGTERM)
    with trio.fail_after(TIMEOUT):
        assert await first.process.wait() == 128 + signal.SIGTERM, first.output
    second = await start_worker(
        tmp_path / "w", own_redis.url, "a", "second", "--lease", "1", "--exit-when-idle"
    )
    with trio.fail_after(TIMEOUT):
        assert await second.process.wait() == 0, second.output
    frames = stream_frames(client, "a")
    assert kinds(frames) == [
        "task_queued",
        "task_started",
        "task_output",
        "task_retrying",
        "task_started",
        "task_completed",
    ]
    assert frames[3]["data"]["error"].startswith("interrupted: worker w:first:")
