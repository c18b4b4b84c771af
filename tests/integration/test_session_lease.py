"""Two real ``runcast run`` on one store and job file: one runs the session, the
other is refused; a SIGKILLed owner's session is taken over (issue 17, item 3)."""

from __future__ import annotations

import json
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from _api_support import http_get
from _runcast_process import run_to_end, start_runcast

from api.store._lease import lease_holder
from api.store._store import SessionStore

pytestmark = pytest.mark.integration

TIMEOUT = 90
REFUSAL_TIMEOUT = 30
PY = sys.executable
TASK_IDS = ("t1", "t2", "t3")

# One task: logs that it ran, waits for the file "go" (leaving if runcast, its
# parent, dies), then reports a usage that depends on its id only.
TASK = """
import json, os, pathlib, sys, time
name, parent = sys.argv[1], os.getppid()
with pathlib.Path("runs.log").open("a") as log:
    log.write(name + "\\n")
while not pathlib.Path("go").exists():
    if os.getppid() != parent:
        sys.exit(1)
    time.sleep(0.02)
print(json.dumps({"usage": {"input_tokens": 1000 + ord(name[-1]), "output_tokens": 10},
                  "model": "house", "cost_usd": 0.125}), flush=True)
"""
TOKENS_PER_RUN = sum(1000 + ord(task_id[-1]) + 10 for task_id in TASK_IDS)


def _job(directory: Path) -> Path:
    (directory / "task.py").write_text(TASK)
    lines = ["concurrency = 3"]
    for task_id in TASK_IDS:
        argv = [PY, "task.py", task_id]
        lines += ["[[task]]", f'id = "{task_id}"', f"command = {json.dumps(argv)}"]
    path = directory / "job.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _runs(directory: Path) -> list[str]:
    return sorted((directory / "runs.log").read_text().split())


async def _until_all_running(port: int) -> str:
    """Poll the other process (nothing here can wake us) until every task runs;
    the session id. Callers bound it."""
    while True:
        reply = (await http_get(port, "/api/tasks")).json()["tasks"]
        if len(reply) == len(TASK_IDS) and all(t["state"] == "running" for t in reply):
            session: dict[str, Any] = (await http_get(port, "/api/session")).json()
            return str(session["session_id"])
        await trio.sleep(0.05)


async def _until_stored_running(store_path: Path, sid: str) -> None:
    """Poll the store (written by another process) until every task runs in it too."""
    store = SessionStore.open(store_path)
    try:
        while True:
            if [task.state for task in store.tasks(sid)] == ["running"] * len(TASK_IDS):
                return
            await trio.sleep(0.05)
    finally:
        store.close()


def _printed_tokens(out: str) -> int:
    printed = re.search(r"^tokens: ([\d,]+) ", out, re.MULTILINE)
    assert printed is not None, out
    return int(printed.group(1).replace(",", ""))


async def test_a_second_run_of_a_live_session_is_refused_and_the_first_completes(
    tmp_path: Path,
) -> None:
    job, store_path = _job(tmp_path), tmp_path / "runcast.db"
    run = ("run", str(job), "--store", str(store_path))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            first = await start_runcast(nursery, *run, cwd=tmp_path)
            sid = await _until_all_running(first.port)

            with trio.fail_after(REFUSAL_TIMEOUT):  # it runs the tasks again if not refused
                code, out, err = await run_to_end(*run, "--port", "0", cwd=tmp_path)
            assert code == 2, (out, err)
            owner = f"pid {first.process.pid}@{socket.gethostname()}"
            assert f"session {sid} is being run by {owner} (last heartbeat " in err
            assert "dashboard at" not in out  # refused before it served or ran anything
            # It changed nothing: no task ran twice, nothing was marked interrupted.
            assert _runs(tmp_path) == sorted(TASK_IDS)
            store = SessionStore.open(store_path)
            assert store.interrupted_attempts(sid) == []
            assert {task.state for task in store.tasks(sid)} == {"running"}
            store.close()

            (tmp_path / "go").touch()
            assert await first.wait() == 0, first.stderr.decode()

    assert _runs(tmp_path) == sorted(TASK_IDS)
    store = SessionStore.open(store_path)
    (session,) = store.sessions()
    assert session.session_id == sid
    assert session.status == "finished"
    assert session.tasks_completed == len(TASK_IDS)
    assert session.usage.total_tokens == TOKENS_PER_RUN
    assert session.usage.records == len(TASK_IDS)
    assert [task.attempts for task in store.tasks(sid)] == [1, 1, 1]
    assert lease_holder(store, sid) is None  # released at the clean end
    # One history, with no seq written twice: every event the run published.
    seqs = [json.loads(wire)["seq"] for wire in store.history(sid)]
    assert seqs == sorted(set(seqs))
    assert seqs[-1] == store.last_seq(sid)
    store.close()
    # The run's own summary and ``runcast show`` say the same total as the store.
    assert _printed_tokens(first.output) == TOKENS_PER_RUN
    with trio.fail_after(TIMEOUT):
        code, shown, err = await run_to_end("show", sid, "--store", str(store_path), cwd=tmp_path)
    assert code == 0, err
    assert f"{TOKENS_PER_RUN:,}" in shown


async def test_a_sigkilled_owners_session_is_taken_over_by_the_next_run(tmp_path: Path) -> None:
    job, store_path = _job(tmp_path), tmp_path / "runcast.db"
    run = ("run", str(job), "--store", str(store_path))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            victim = await start_runcast(nursery, *run, cwd=tmp_path)
            sid = await _until_all_running(victim.port)
            await _until_stored_running(store_path, sid)
            victim_pid = victim.process.pid
            victim.signal(signal.SIGKILL)
            assert await victim.wait() == -signal.SIGKILL

    store = SessionStore.open(store_path)
    holder = lease_holder(store, sid)
    assert holder is not None
    assert holder.owner.pid == victim_pid  # the dead run still holds it
    store.close()

    # At once (well within the heartbeat timeout): the owner's pid is gone.
    (tmp_path / "go").touch()
    with trio.fail_after(TIMEOUT):
        code, out, err = await run_to_end(*run, "--port", "0", cwd=tmp_path)
    assert code == 0, err
    assert f"resuming session {sid}" in out
    host = socket.gethostname()
    assert f"took session {sid} over from pid {victim_pid}@{host}: " in out
    assert f"pid {victim_pid} is no longer running on this host" in out

    store = SessionStore.open(store_path)
    session = store.session(sid)
    assert session.status == "finished"
    assert session.tasks_completed == len(TASK_IDS)
    assert store.interrupted_attempts(sid) == [(task_id, 1) for task_id in TASK_IDS]
    assert [task.attempts for task in store.tasks(sid)] == [2, 2, 2]
    assert session.usage.total_tokens == TOKENS_PER_RUN  # the killed attempts reported none
    assert lease_holder(store, sid) is None
    store.close()
