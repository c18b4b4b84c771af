"""The durable store end to end: the real ``runcast run``, killed and resumed."""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest
import trio
from _api_support import http_get
from _runcast_process import run_to_end, start_runcast

from api.store._store import SessionStore

pytestmark = pytest.mark.integration

TIMEOUT = 90
PY = sys.executable

# Each run of a task appends a line to runs.log, so a re-run is visible.
QUICK = """
import json, pathlib, sys
pathlib.Path("runs.log").open("a").write(sys.argv[1] + "\\n")
print(json.dumps({"usage": {"input_tokens": 100, "output_tokens": 10}, "model": "house",
                  "cost_usd": 0.01}))
"""
# Reports usage every 20 ms forever; after flushing each line it appends the
# tokens to ledger.log, so the ledger holds at least what runcast could read.
STREAMING = """
import json, pathlib, sys, time
ledger = pathlib.Path("ledger.log").open("a")
pathlib.Path("runs.log").open("a").write(sys.argv[1] + "\\n")
n = 0
while True:
    n += 1
    print(json.dumps({"usage": {"input_tokens": 7, "output_tokens": 3}, "model": "house",
                      "cost_usd": 0.001}), flush=True)
    ledger.write(f"{time.time()} 10\\n"); ledger.flush()
    if n >= int(sys.argv[2]):
        break
    time.sleep(0.02)
"""


def _job(tmp_path: Path, stream_lines: int) -> Path:
    tasks = [
        ("quick-1", [PY, "-c", QUICK, "quick-1"]),
        ("quick-2", [PY, "-c", QUICK, "quick-2"]),
        ("stream", [PY, "-c", STREAMING, "stream", str(stream_lines)]),
    ]
    lines = ["concurrency = 3"]
    for task_id, argv in tasks:
        lines += ["[[task]]", f'id = "{task_id}"', f"command = {json.dumps(argv)}"]
    path = tmp_path / "job.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _runs(tmp_path: Path) -> list[str]:
    return (tmp_path / "runs.log").read_text().split()


async def _wait_for_usage(port: int, tokens: int) -> None:
    """Poll another process's /api/session (nothing here can wake us); callers bound it."""
    while True:
        if (await http_get(port, "/api/session")).json()["total_tokens"] >= tokens:
            return
        await trio.sleep(0.05)


async def test_interrupted_run_resumes_without_rerunning_finished_tasks(tmp_path: Path) -> None:
    job = _job(tmp_path, stream_lines=1_000_000)
    store = tmp_path / "runs.db"
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            first = await start_runcast(
                nursery, "run", str(job), "--store", str(store), cwd=tmp_path
            )
            await _wait_for_usage(first.port, 2 * 110 + 100)
            first.signal(signal.SIGTERM)
            assert await first.wait() == 143
    assert sorted(_runs(tmp_path)) == ["quick-1", "quick-2", "stream"]
    reader = SessionStore.open(store)
    (session,) = reader.sessions()
    assert session.status == "interrupted"
    before = session.usage
    assert before.total_tokens >= 320
    reader.close()

    # Second run: the stream task runs to the end, the quick ones are not run again.
    job = _job(tmp_path, stream_lines=5)
    with trio.fail_after(TIMEOUT):
        code, out, err = await run_to_end(
            "run", str(job), "--store", str(store), "--port", "0", cwd=tmp_path
        )
    assert code == 0, err
    assert f"resuming session {session.session_id}" in out
    assert sorted(_runs(tmp_path)) == ["quick-1", "quick-2", "stream", "stream"]
    reader = SessionStore.open(store)
    (resumed,) = reader.sessions()
    assert resumed.session_id == session.session_id
    assert resumed.status == "finished"
    assert resumed.usage.total_tokens == before.total_tokens + 5 * 10
    assert resumed.tasks_completed == 3
    tasks = {task.task_id: task for task in reader.tasks(session.session_id)}
    assert tasks["stream"].attempts == 2  # the interrupted attempt counts
    assert tasks["quick-1"].attempts == 1
    assert resumed.duration_seconds >= session.duration_seconds
    reader.close()

    # --fresh starts over.
    with trio.fail_after(TIMEOUT):
        code, out, err = await run_to_end(
            "run", str(job), "--store", str(store), "--port", "0", "--fresh", cwd=tmp_path
        )
    assert code == 0, err
    assert "resuming" not in out
    assert len(_runs(tmp_path)) == 7


async def test_sigkill_loses_at_most_the_last_flush(tmp_path: Path) -> None:
    job = _job(tmp_path, stream_lines=1_000_000)
    store = tmp_path / "killed.db"
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            victim = await start_runcast(
                nursery, "run", str(job), "--store", str(store), cwd=tmp_path
            )
            await _wait_for_usage(victim.port, 2 * 110 + 500)
            await trio.sleep(0.37)  # somewhere between flushes
            victim.signal(signal.SIGKILL)
            killed_at = time.time()
            assert await victim.wait() == -signal.SIGKILL
    conn = sqlite3.connect(store)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()

    ledger = [line.split() for line in (tmp_path / "ledger.log").read_text().splitlines()]
    printed = sum(int(tokens) for _, tokens in ledger)
    # Everything printed up to a flush interval (plus a reading margin) before the kill.
    margin = 0.25 + 0.5
    settled = sum(int(tokens) for at, tokens in ledger if float(at) < killed_at - margin)
    reader = SessionStore.open(store)
    (session,) = reader.sessions()
    stored = reader.usage_totals(session.session_id, "stream").total_tokens
    assert settled <= stored <= printed
    assert reader.usage_totals(session.session_id, "quick-1").total_tokens == 110
    reader.close()

    # The killed run resumes and finishes; the stream task's stored attempt was interrupted.
    job = _job(tmp_path, stream_lines=3)
    with trio.fail_after(TIMEOUT):
        code, _, err = await run_to_end(
            "run", str(job), "--store", str(store), "--port", "0", cwd=tmp_path
        )
    assert code == 0, err
    reader = SessionStore.open(store)
    (finished,) = reader.sessions()
    assert finished.status == "finished"
    assert reader.usage_totals(session.session_id, "stream").total_tokens == stored + 30
    assert reader.integrity_ok()
    reader.close()
