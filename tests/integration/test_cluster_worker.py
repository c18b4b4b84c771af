"""``runcast submit`` and ``runcast worker`` against a real redis-server, as real processes."""

from __future__ import annotations

import contextlib
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio
from _redis_support import RedisServer, running_redis
from _worker_processes import (
    fold_events,
    fold_summary,
    kinds,
    runcast,
    start_worker,
    stream_frames,
    usage_code,
    wait_for,
    write_job,
)

from api.cluster import ControlCommand, SessionKeys, open_link, parse_redis_url
from events import EventCodec, ExecutorPaused, ExecutorResumed

pytestmark = pytest.mark.integration

TIMEOUT = 60


async def test_three_workers_give_the_totals_runcast_run_gives(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    # Task "flaky" fails its first attempt (its marker file is new) and retries.
    flaky = "import os, sys\nif not os.path.exists('flaky'):\n    open('flaky', 'w'); sys.exit(1)\n"
    tasks: list[dict[str, Any]] = [
        {"id": f"t{i}", "code": usage_code(i, sleep=0.4)} for i in range(6)
    ]
    tasks.append({"id": "flaky", "code": usage_code(9, prefix=flaky), "retries": 1})
    job = write_job(tmp_path / "job.toml", tasks)
    (tmp_path / "single").mkdir()
    with trio.fail_after(TIMEOUT):
        code, out, err = await runcast(
            "run", str(job), "--port", "0", "--store", ":memory:", cwd=tmp_path / "single"
        )
    assert code == 0, err
    expected = fold_summary(out)
    assert len(expected) == 7

    code, out, err = await runcast(
        "submit", str(job), "--redis", own_redis.url, "--session", "totals", cwd=tmp_path
    )
    assert code == 0, err
    with trio.fail_after(TIMEOUT):
        workers = [
            await start_worker(
                tmp_path / "cluster", own_redis.url, "totals", name, "--concurrency", "1",
                "--exit-when-idle",
            )
            for name in ("one", "two", "three")
        ]  # fmt: skip
        codes = [await worker.process.wait() for worker in workers]
    assert codes == [0, 0, 0], [worker.output for worker in workers]
    frames = stream_frames(own_redis.client(), "totals")
    assert fold_events(frames) == expected
    for task in tasks:  # each ended once, completed
        ends = [k for k in kinds(frames, task["id"]) if k.startswith("task_") and k != "task_usage"]
        assert ends.count("task_completed") == 1
        assert "task_failed" not in ends
        assert "task_cancelled" not in ends
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    started_by = {f["src"] for f in frames if f["event"] == "task_started"}
    assert len(started_by) >= 2  # the work was shared


async def test_a_killed_workers_task_is_reclaimed_as_an_interrupted_attempt(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    # The task writes its pid so the test can end the killed worker's orphan.
    code = usage_code(
        1, sleep=2.0, prefix="import os\nopen('pids', 'a').write(f'{os.getpid()}\\n')\n"
    )
    job = write_job(tmp_path / "job.toml", [{"id": "sleepy", "code": code, "retries": 1}])
    client = own_redis.client()
    try:
        await runcast("submit", str(job), "--redis", own_redis.url, "--session", "k", cwd=tmp_path)
        first = await start_worker(tmp_path / "w", own_redis.url, "k", "first", "--lease", "1")
        await wait_for(lambda: "task_usage" in kinds(stream_frames(client, "k")))
        first.kill()
        await first.process.wait()
        second = await start_worker(
            tmp_path / "w", own_redis.url, "k", "second", "--lease", "1", "--exit-when-idle"
        )
        with trio.fail_after(TIMEOUT):
            assert await second.process.wait() == 0, second.output
    finally:
        _kill_orphans(tmp_path / "w" / "pids")
    frames = stream_frames(client, "k")
    assert kinds(frames) == [
        "task_queued",
        "task_started",
        "task_usage",
        "task_retrying",
        "task_started",
        "task_usage",
        "task_usage",
        "task_output",
        "task_completed",
    ]
    retrying = frames[3]
    assert retrying["data"]["attempt"] == 1
    assert retrying["data"]["error"].startswith("interrupted: worker w:first:")
    assert frames[-1]["data"]["attempt"] == 2
    # What the interrupted attempt spent stays, once; the second attempt's adds to it.
    assert fold_events(frames)["sleepy"].tokens == (101 + 101 + 3, 10 + 10 + 1, 7 + 7, 11)
    assert {f["src"] for f in frames[1:3]} != {f["src"] for f in frames[3:]}


def _kill_orphans(pids: Path) -> None:
    if not pids.exists():
        return
    for line in pids.read_text().split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line), signal.SIGKILL)


async def _control(url: str, session: str, op: str, event: object) -> None:
    codec = EventCodec()
    wire = codec.encode(0, datetime.now(UTC), event)  # type: ignore[arg-type]
    async with open_link(parse_redis_url(url), SessionKeys(session)) as link:
        result = await link.control(
            ControlCommand(op=op, by="operator", reason="test", events=(wire,))
        )
    assert result.ok, result.reason


async def test_a_pause_starts_nothing_new_on_any_worker(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    tasks = [{"id": f"t{i}", "code": usage_code(i, sleep=0.3)} for i in range(8)]
    job = write_job(tmp_path / "job.toml", tasks)
    client = own_redis.client()
    await runcast("submit", str(job), "--redis", own_redis.url, "--session", "p", cwd=tmp_path)
    workers = [
        await start_worker(tmp_path / "w", own_redis.url, "p", name, "--concurrency", "1",
                           "--exit-when-idle")
        for name in ("one", "two")
    ]  # fmt: skip
    await wait_for(lambda: "task_started" in kinds(stream_frames(client, "p")))
    await _control(own_redis.url, "p", "pause", ExecutorPaused(by="operator", reason="test"))
    # What was claimed before the pause may still start; then nothing for a while.
    await trio.sleep(0.5)
    started = kinds(stream_frames(client, "p")).count("task_started")
    await trio.sleep(1.5)
    frames = stream_frames(client, "p")
    assert kinds(frames).count("task_started") == started
    assert started <= 4  # at most one per worker before the pause and one claimed meanwhile
    assert all(w.process.returncode is None for w in workers)  # paused is not idle
    await _control(own_redis.url, "p", "resume", ExecutorResumed(by="operator", reason="test"))
    with trio.fail_after(TIMEOUT):
        codes = [await worker.process.wait() for worker in workers]
    assert codes == [0, 0], [w.output for w in workers]
    folded = fold_events(stream_frames(client, "p"))
    assert {task: fold.state for task, fold in folded.items()} == {
        task["id"]: "completed" for task in tasks
    }


async def test_a_wrong_password_fails_at_start_with_one_clear_line(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis", password="right-secret") as server:
        wrong = server.url.replace("right-secret", "wrong-secret")
        with trio.fail_after(TIMEOUT):
            code, out, err = await runcast(
                "worker", "--redis", wrong, "--session", "s", cwd=tmp_path
            )
            env_code, _, env_err = await runcast(
                "worker", "--redis", server.url_without_password, "--session", "s",
                cwd=tmp_path, env={"RUNCAST_REDIS_PASSWORD": "wrong-secret"},
            )  # fmt: skip
            job = write_job(tmp_path / "job.toml", [{"id": "a", "code": "print(1)"}])
            submit_code, _, submit_err = await runcast(
                "submit", str(job), "--redis", wrong, "--session", "s", cwd=tmp_path
            )
    assert (code, env_code, submit_code) == (2, 2, 2)
    assert submit_err.startswith("runcast submit: Redis ")
    for text in (err, env_err, submit_err):
        assert len(text.strip().splitlines()) == 1, text
        assert text.startswith(("runcast worker: Redis ", "runcast submit: Redis "))
        assert "authentication refused" in text
        assert "secret" not in text
    assert "secret" not in out


@pytest.mark.parametrize(
    ("redis_url", "session", "expected"),
    [
        ("http://:pw-secret@127.0.0.1:1/0", "s", "runcast worker: Redis URL: expected redis://"),
        ("redis://:pw-secret@127.0.0.1:port/0", "s", "runcast worker: Redis URL: the port must"),
        ("redis://:pw-secret@127.0.0.1:1/0", "bad name", "runcast worker: session name 'bad name'"),
    ],
)
async def test_a_bad_url_or_session_name_is_one_line_and_exit_2(
    tmp_path: Path, redis_url: str, session: str, expected: str
) -> None:
    with trio.fail_after(TIMEOUT):
        code, _, err = await runcast(
            "worker", "--redis", redis_url, "--session", session, cwd=tmp_path
        )
    assert code == 2
    assert err.startswith(expected)
    assert len(err.strip().splitlines()) == 1
    assert "secret" not in err


async def test_submitting_twice_adds_nothing_the_second_time(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    tasks = [{"id": f"t{i}", "code": "print(1)"} for i in range(3)]
    job = write_job(tmp_path / "job.toml", tasks)
    args = ("submit", str(job), "--redis", own_redis.url, "--session", "twice")
    first = await runcast(*args, cwd=tmp_path)
    second = await runcast(*args, cwd=tmp_path)
    assert first[:2] == (
        0,
        "runcast: 3 of 3 task(s) submitted to session twice (0 already there)\n",
    )
    assert second[:2] == (
        0,
        "runcast: 0 of 3 task(s) submitted to session twice (3 already there)\n",
    )
    client = own_redis.client()
    assert client.xlen("runcast:{twice}:tasks") == 3
    assert kinds(stream_frames(client, "twice")) == ["task_queued"] * 3


async def test_a_bad_job_file_fails_submit_as_it_fails_run(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    job = write_job(tmp_path / "job.toml", [{"id": "a", "code": "print(1)"}])
    job.write_text(job.read_text() + "timeout = -1\n", encoding="utf-8")
    with trio.fail_after(TIMEOUT):
        run = await runcast("run", str(job), "--port", "0", "--store", ":memory:", cwd=tmp_path)
        submit = await runcast(
            "submit", str(job), "--redis", own_redis.url, "--session", "bad", cwd=tmp_path
        )
    assert (run[0], submit[0]) == (2, 2)
    message = run[2].removeprefix("runcast run: ")
    assert "job.toml:5: task 1 ('a'): timeout:" in message
    assert submit[2] == f"runcast submit: {message}"
    assert own_redis.client().keys("runcast:{bad}:*") == []
