"""Crash: SIGKILL ``runcast run`` mid-job, restart it on the same store, compare with a clean run.

The job's tasks are deterministic: each prints the same usage records every
time it runs, some quickly, some slowly enough to be mid-run at the kill. The
killed-and-resumed session must account, attempt by attempt, for exactly what
an uninterrupted run of the same job spends, plus what the attempts the crash
cut short had already spent (real spend, counted once, shown apart).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from _api_support import http_get
from _runcast_process import run_to_end, start_runcast

from api.store._store import SessionStore, UsageTotals

pytestmark = pytest.mark.integration

TIMEOUT = 120
PY = sys.executable

# One task: NAME RECORDS DELAY. Records its pid (so the test can see it gone),
# then prints RECORDS usage lines, each a function of NAME and its index only.
# Costs are multiples of 1/1024: their sums are exact in any order.
TASK = """
import json, os, pathlib, sys, time
name, count, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
pathlib.Path("pids").mkdir(exist_ok=True)
pathlib.Path("pids", f"{name}.{os.getpid()}").touch()
seed = sum(map(ord, name))
for i in range(count):
    usage = {"input_tokens": seed + i, "output_tokens": 2 * i + 1, "cache_read_tokens": 7}
    print(json.dumps({"usage": usage, "model": "house", "cost_usd": (seed % 8 + 1) / 1024}),
          flush=True)
    time.sleep(delay)
"""
# (task id, records, seconds between records): the long ones run ~4 s.
TASKS = [
    ("long-1", 80, 0.05),
    ("long-2", 80, 0.05),
    ("short-1", 5, 0.0),
    ("short-2", 5, 0.0),
    ("short-3", 5, 0.0),
    ("long-3", 60, 0.05),
    ("short-4", 5, 0.0),
]


def _job(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "task.py").write_text(TASK)
    lines = ["concurrency = 3"]
    for task_id, records, delay in TASKS:
        argv = [PY, "task.py", task_id, str(records), str(delay)]
        lines += ["[[task]]", f'id = "{task_id}"', f"command = {json.dumps(argv)}"]
    path = directory / "job.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def _tasks(port: int) -> dict[str, dict[str, Any]]:
    reply = await http_get(port, "/api/tasks")
    return {task["task_id"]: task for task in reply.json()["tasks"]}


async def _until_mid_run(port: int) -> str:
    """Poll the server (another process: nothing here can wake us) until a long
    task has reported usage while some task has completed; callers bound it."""
    while True:
        tasks = await _tasks(port)
        completed = [t for t in tasks.values() if t["state"] == "completed"]
        running = [
            task_id
            for task_id, t in tasks.items()
            if task_id.startswith("long") and t["state"] == "running" and t["input_tokens"]
        ]
        if completed and running:
            return running[0]
        await trio.sleep(0.05)


async def _until_gone(pids: list[int]) -> None:
    """The killed run's children die on their next write to its closed pipe."""
    while True:
        if not any(_alive(pid) for pid in pids):
            return
        await trio.sleep(0.05)


def _pids(directory: Path) -> list[int]:
    return [int(entry.suffix[1:]) for entry in directory.iterdir()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (its parent, the killed runcast, cannot reap it).
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _per_task(store: SessionStore, session_id: str, **kind: Any) -> dict[str, UsageTotals]:
    return {
        task.task_id: store.usage_totals(session_id, task.task_id, **kind)
        for task in store.tasks(session_id)
    }


def _sum(a: UsageTotals, b: UsageTotals) -> UsageTotals:
    fields = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    more = ("cost_usd", "unpriced_tokens", "records")
    return UsageTotals(**{name: getattr(a, name) + getattr(b, name) for name in fields + more})


async def test_sigkilled_run_resumes_to_the_uninterrupted_totals(tmp_path: Path) -> None:
    crashed_dir, clean_dir = tmp_path / "crashed", tmp_path / "clean"
    job = _job(crashed_dir)
    store_path = crashed_dir / "runcast.db"

    # 1. Run, and SIGKILL it while long tasks are mid-run with usage already stored.
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            victim = await start_runcast(
                nursery, "run", str(job), "--store", str(store_path), cwd=crashed_dir
            )
            cut_short = await _until_mid_run(victim.port)
            await trio.sleep(0.6)  # over two flush intervals: its usage so far is stored
            assert (await _tasks(victim.port))[cut_short]["state"] == "running"
            victim.signal(signal.SIGKILL)
            assert await victim.wait() == -signal.SIGKILL
        await _until_gone(_pids(crashed_dir / "pids"))

    store = SessionStore.open(store_path)
    assert store.integrity_ok()
    (killed,) = store.sessions()
    sid = killed.session_id
    assert killed.status == "running"  # nobody ended it: the next run resumes it
    at_kill = {task.task_id: task for task in store.tasks(sid)}
    usage_at_kill = _per_task(store, sid)
    assert at_kill[cut_short].state == "running"
    assert usage_at_kill[cut_short].records > 0
    store.close()

    # 2. Restart on the same store and let it finish.
    with trio.fail_after(TIMEOUT):
        code, out, err = await run_to_end(
            "run", str(job), "--store", str(store_path), "--port", "0", cwd=crashed_dir
        )
    assert code == 0, err
    assert f"resuming session {sid}" in out

    # 3. The same job, uninterrupted, into another store.
    clean_job = _job(clean_dir)
    with trio.fail_after(TIMEOUT):
        code, _, err = await run_to_end(
            "run",
            str(clean_job),
            "--store",
            str(clean_dir / "runcast.db"),
            "--port",
            "0",
            cwd=clean_dir,
        )
    assert code == 0, err

    resumed = SessionStore.open(store_path)
    clean = SessionStore.open(clean_dir / "runcast.db")
    (clean_session,) = clean.sessions()
    resumed_session = resumed.session(sid)
    tasks = {task.task_id: task for task in resumed.tasks(sid)}
    ids = [task_id for task_id, _, _ in TASKS]
    assert sorted(tasks) == sorted(ids)
    assert all(task.state == "completed" for task in tasks.values())
    assert resumed_session.tasks_completed == clean_session.tasks_completed == len(ids)

    # Each task's completed attempt spent exactly what the clean run's did.
    clean_usage = _per_task(clean, clean_session.session_id)
    assert _per_task(resumed, sid, interrupted=False) == clean_usage
    # What a stored completion had at the kill was complete (the prefix property).
    for task_id, task in at_kill.items():
        if task.state == "completed":
            assert usage_at_kill[task_id] == clean_usage[task_id], task_id

    # The attempts the crash cut short: exactly the tasks running at the kill that
    # had started, each re-run once as its next attempt; the rest ran once.
    cut = {task_id for task_id, task in at_kill.items() if task.state == "running"}
    assert cut_short in cut
    assert resumed.interrupted_attempts(sid) == sorted(
        (task_id, at_kill[task_id].attempts) for task_id in cut
    )
    for task_id in ids:
        ran = resumed.conn.execute(
            "SELECT DISTINCT attempt FROM usage WHERE session_id = ? AND task_id = ? "
            "ORDER BY attempt",
            (sid, task_id),
        ).fetchall()
        expected = [1] if usage_at_kill[task_id].records or task_id not in cut else []
        expected += [2] if task_id in cut else []
        assert [attempt for (attempt,) in ran] == expected, task_id
        assert tasks[task_id].attempts == (2 if task_id in cut else 1)

    # Session totals = the clean run's + what the cut-short attempts spent; nothing
    # double-counted, nothing lost, and that share is what was stored at the kill.
    interrupted = resumed_session.interrupted
    assert interrupted.records > 0
    assert interrupted == _sum_all([usage_at_kill[task_id] for task_id in cut])
    assert resumed_session.usage == _sum(clean_session.usage, interrupted)

    # What the run reported (its final session_update, printed in the summary) is that total.
    printed = re.search(r"^tokens: ([\d,]+) ", out, re.MULTILINE)
    assert printed is not None, out
    assert int(printed.group(1).replace(",", "")) == resumed_session.usage.total_tokens
    share = f"of which interrupted attempts: {interrupted.total_tokens:,} tokens, "
    assert share in out, out

    # ``runcast show`` says how much of it the interrupted attempts spent.
    with trio.fail_after(TIMEOUT):
        code, shown, err = await run_to_end("show", sid, "--store", str(store_path), cwd=tmp_path)
    assert code == 0, err
    assert f"{share}${interrupted.cost_usd:.4f}" in shown
    resumed.close()
    clean.close()


def _sum_all(parts: list[UsageTotals]) -> UsageTotals:
    total = UsageTotals()
    for part in parts:
        total = _sum(total, part)
    return total
