"""``runcast run JOBFILE`` end to end: the real console script, real tasks, real sockets."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
import trio
from _api_support import http_get, receive_json, request, ws_client
from _runcast_process import run_to_end, start_runcast

pytestmark = pytest.mark.integration

TIMEOUT = 60
PY = sys.executable
USAGE_LINE = json.dumps(
    {
        "usage": {"input_tokens": 1000, "output_tokens": 200, "cache_read_tokens": 500},
        "model": "claude-sonnet-4-5",
        "provider": "anthropic",
        "cost_usd": 0.125,
    }
)
REPORTS_USAGE = f"print({USAGE_LINE!r}); print('all done')"


def _job(tmp_path: Path, *tasks: tuple[str, str], extra: str = "") -> Path:
    lines = [extra]
    for task_id, code in tasks:
        argv = ", ".join(json.dumps(arg) for arg in (PY, "-c", code))
        lines += ["[[task]]", f'id = "{task_id}"', f"command = [{argv}]"]
    path = tmp_path / "job.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def _wait_for_state(port: int, task_id: str, state: str) -> None:
    """Poll /api/tasks (the process is not ours to wake us); the caller bounds the wait."""
    while True:
        tasks = (await http_get(port, "/api/tasks")).json()["tasks"]
        if any(t["task_id"] == task_id and t["state"] == state for t in tasks):
            return
        await trio.sleep(0.05)


async def test_all_tasks_complete_exit_0(tmp_path: Path) -> None:
    job = _job(tmp_path, ("first", REPORTS_USAGE), ("second", "print('hi')"))
    with trio.fail_after(TIMEOUT):
        code, out, err = await run_to_end(
            "run", str(job), "--port", "0", "--store", ":memory:", cwd=tmp_path
        )
    assert code == 0, err
    assert "dashboard at http://127.0.0.1:" in out
    table = out[out.index("TASK") :]
    assert table.splitlines()[1].split()[:3] == ["first", "completed", "1"]
    assert table.splitlines()[2].split()[:2] == ["second", "completed"]
    assert "2 tasks: 2 completed, 0 failed, 0 cancelled" in out
    assert "tokens: 1,700 (in 1,000, out 200, cache read 500, cache write 0)" in out
    assert "cost: $0.1250" in out


async def test_a_failed_task_makes_exit_1(tmp_path: Path) -> None:
    job = _job(tmp_path, ("good", REPORTS_USAGE), ("bad", "import sys; sys.exit(3)"))
    with trio.fail_after(TIMEOUT):
        code, out, _ = await run_to_end("run", str(job), "--port", "0", cwd=tmp_path)
    assert code == 1
    bad_row = next(line for line in out.splitlines() if line.startswith("bad "))
    assert bad_row.split()[1] == "failed"
    assert "2 tasks: 1 completed, 1 failed, 0 cancelled" in out


async def test_bad_job_file_fails_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    job = _job(tmp_path, ("t", f"open({str(marker)!r}, 'w')"))
    job.write_text(job.read_text() + "colour = 'red'\n", encoding="utf-8")
    with trio.fail_after(TIMEOUT):
        code, out, err = await run_to_end("run", str(job), "--port", "0", cwd=tmp_path)
    assert code == 2
    assert "job.toml" in err
    assert "colour" in err
    assert "dashboard at" not in out
    assert not marker.exists()


async def test_serves_while_running_and_obeys_commands(tmp_path: Path) -> None:
    job = _job(tmp_path, ("first", REPORTS_USAGE))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            runcast = await start_runcast(
                nursery, "run", str(job), "--start-paused", "--auth-token", "op", cwd=tmp_path
            )
            auth = {"Authorization": "Bearer op"}
            tasks = (await http_get(runcast.port, "/api/tasks", headers=auth)).json()["tasks"]
            assert [(t["task_id"], t["state"]) for t in tasks] == [("first", "queued")]
            refused = await http_get(runcast.port, "/api/tasks")
            assert refused.status == 401
            async with ws_client(runcast.port, "/ws?token=op") as ws:
                await request(ws, {"type": "subscribe", "task_id": "*"})
                snapshot = await receive_json(ws)
                assert snapshot["data"]["is_paused"] is True
                result = await request(ws, {"type": "command", "action": "resume"})
                assert result["status"] == "resumed"
            code = await runcast.wait()
    assert code == 0
    assert "1 tasks: 1 completed" in runcast.output


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
async def test_signal_cancels_tasks_and_prints_the_summary(
    tmp_path: Path, signum: signal.Signals, exit_code: int
) -> None:
    job = _job(tmp_path, ("slow", "import time; time.sleep(120)"), ("quick", "print(1)"))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            runcast = await start_runcast(nursery, "run", str(job), cwd=tmp_path)
            await _wait_for_state(runcast.port, "slow", "running")
            start = trio.current_time()
            runcast.signal(signum)
            code = await runcast.wait()
            elapsed = trio.current_time() - start
    assert code == exit_code
    assert elapsed < 10
    slow_row = next(line for line in runcast.output.splitlines() if line.startswith("slow "))
    assert slow_row.split()[1] == "cancelled"
    assert "interrupted: cancelling tasks" in runcast.stderr.decode()


async def test_keep_serving_stays_up_until_interrupted(tmp_path: Path) -> None:
    job = _job(tmp_path, ("only", "print('x')"))
    store = tmp_path / "runs.db"
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            runcast = await start_runcast(
                nursery, "run", str(job), "--keep-serving", "--store", str(store), cwd=tmp_path
            )
            await _wait_for_state(runcast.port, "only", "completed")
            assert (await http_get(runcast.port, "/healthz")).status == 200
            runcast.signal(signal.SIGINT)
            code = await runcast.wait()
        # Every task had ended: the signal only stopped the serving, so the session
        # is finished, not interrupted (a next run starts a new session).
        listed, sessions, _ = await run_to_end(
            "sessions", "--store", str(store), "--json", cwd=tmp_path
        )
    assert code == 0
    assert "1 tasks: 1 completed" in runcast.output
    assert listed == 0
    assert [session["status"] for session in json.loads(sessions)] == ["finished"]


async def test_a_port_in_use_leaves_no_session_behind(tmp_path: Path) -> None:
    job = _job(tmp_path, ("only", "print('x')"))
    store = tmp_path / "runs.db"
    taken = trio.socket.socket()
    await taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    with taken, trio.fail_after(TIMEOUT):
        code, _, err = await run_to_end(
            "run", str(job), "--port", str(port), "--store", str(store), cwd=tmp_path
        )
        assert code == 2, err
        assert "Traceback" not in err
        listed, sessions, _ = await run_to_end(
            "sessions", "--store", str(store), "--json", cwd=tmp_path
        )
        assert (listed, json.loads(sessions)) == (0, [])
        # The next run starts afresh: nothing to resume.
        code, _, err = await run_to_end(
            "run", str(job), "--port", "0", "--store", str(store), cwd=tmp_path
        )
    assert code == 0, err
    assert "resumed=False" in err
