"""``runcast run JOBFILE --retry-failed`` end to end: the real CLI, a real job file and store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio
from _runcast_process import run_to_end

from api.store._store import SessionStore

pytestmark = pytest.mark.integration

TIMEOUT = 90
PY = sys.executable

# Appends its name to runs.log, reports usage, and fails unless the marker file exists.
TASK = """
import json, pathlib, sys
pathlib.Path("runs.log").open("a").write(sys.argv[1] + "\\n")
print(json.dumps({"usage": {"input_tokens": 100, "output_tokens": 10}, "model": "house",
                  "cost_usd": 0.01}), flush=True)
if sys.argv[2] == "needs-marker" and not pathlib.Path("marker").exists():
    sys.exit("no marker yet")
"""


def _job(tmp_path: Path, *, flaky_extra: str = "") -> Path:
    tasks = [
        ("steady", [PY, "-c", TASK, "steady", "always"]),
        (
            "flaky",
            [PY, "-c", TASK, "flaky", "needs-marker", *([flaky_extra] if flaky_extra else [])],
        ),
    ]
    lines = ["concurrency = 2"]
    for task_id, argv in tasks:
        lines += ["[[task]]", f'id = "{task_id}"', f"command = {json.dumps(argv)}"]
    path = tmp_path / "job.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _runs(tmp_path: Path) -> list[str]:
    return (tmp_path / "runs.log").read_text().split()


async def _run(tmp_path: Path, job: Path, *extra: str) -> tuple[int, str, str]:
    store = str(tmp_path / "runs.db")
    return await run_to_end("run", str(job), "--store", store, "--port", "0", *extra, cwd=tmp_path)


async def test_retry_failed_reruns_only_the_failed_task_in_the_same_session(
    tmp_path: Path,
) -> None:
    job = _job(tmp_path)
    with trio.fail_after(TIMEOUT):
        code, _, err = await _run(tmp_path, job)
        assert code == 1, err
        reader = SessionStore.open(tmp_path / "runs.db")
        (first,) = reader.sessions()
        reader.close()
        assert (first.tasks_completed, first.tasks_failed) == (1, 1)
        (tmp_path / "marker").touch()
        code, out, err = await _run(tmp_path, job, "--retry-failed")
    assert code == 0, err
    assert f"resuming session {first.session_id}" in out
    assert sorted(_runs(tmp_path)) == ["flaky", "flaky", "steady"]
    reader = SessionStore.open(tmp_path / "runs.db")
    (session,) = reader.sessions()
    tasks = {task.task_id: task for task in reader.tasks(session.session_id)}
    reader.close()
    assert session.session_id == first.session_id
    assert session.status == "finished"
    assert (session.tasks_completed, session.tasks_failed) == (2, 0)
    assert session.usage.total_tokens == first.usage.total_tokens + 110  # carried on
    assert (tasks["flaky"].state, tasks["flaky"].attempts) == ("completed", 2)
    assert (tasks["steady"].state, tasks["steady"].attempts) == ("completed", 1)


async def test_retry_failed_refuses_a_changed_command_unless_accepted(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        code, _, err = await _run(tmp_path, _job(tmp_path))
        assert code == 1, err
        (tmp_path / "marker").touch()
        changed = _job(tmp_path, flaky_extra="--new-flag")
        code, _, err = await _run(tmp_path, changed, "--retry-failed")
        assert code == 2
        assert err.strip().splitlines()[-1] == (
            "runcast run: the command of task 'flaky' changed since session "
            f"{_session_id(tmp_path)} ran it; --accept-changes runs the new command as the "
            "next attempt"
        )
        assert _runs(tmp_path).count("flaky") == 1  # nothing ran
        code, _, err = await _run(tmp_path, changed, "--retry-failed", "--accept-changes")
    assert code == 0, err
    assert sorted(_runs(tmp_path)) == ["flaky", "flaky", "steady"]


async def test_retry_failed_bad_only_and_nothing_to_retry(tmp_path: Path) -> None:
    job = _job(tmp_path)
    with trio.fail_after(TIMEOUT):
        code, _, err = await _run(tmp_path, job, "--retry-failed")
        assert code == 2
        assert "holds no session of this job file" in err
        code, _, err = await _run(tmp_path, job)
        assert code == 1, err
        code, _, err = await _run(tmp_path, job, "--retry-failed", "--only", "nope")
        assert code == 2
        assert f"--only: no task 'nope' in {job}" in err
        code, _, err = await _run(tmp_path, job, "--retry-failed", "--only", "steady")
        assert code == 2
        assert "--only: task 'steady' completed in session" in err
        (tmp_path / "marker").touch()
        code, _, err = await _run(tmp_path, job, "--retry-failed", "--only", "flaky")
        assert code == 0, err
        code, _, err = await _run(tmp_path, job, "--retry-failed")
    assert code == 2
    assert "every task completed; nothing to retry" in err
    assert sorted(_runs(tmp_path)) == ["flaky", "flaky", "steady"]


def _session_id(tmp_path: Path) -> str:
    reader = SessionStore.open(tmp_path / "runs.db")
    try:
        return reader.sessions()[0].session_id
    finally:
        reader.close()
