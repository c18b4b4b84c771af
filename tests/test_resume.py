"""Planning a run against a store: new session, or continuing the job's unfinished one."""

from __future__ import annotations

from pathlib import Path

import pytest

from api._resume import job_key, plan_session
from api._store import SessionStore, WriteOp
from executor import JobFile, load_job_file

JOB = """
budget_usd = 3.0
[[task]]
id = "done"
command = ["true"]
[[task]]
id = "was-running"
command = ["true"]
[[task]]
id = "queued"
command = ["true"]
[[task]]
id = "broken"
command = ["true"]
[[task]]
id = "stopped"
command = ["true"]
[[task]]
command = ["true"]
"""


@pytest.fixture
def job(tmp_path: Path) -> JobFile:
    path = tmp_path / "job.toml"
    path.write_text(JOB)
    return load_job_file(path)


def _usage(sid: str, task_id: str, seq: int, cost: float | None, tokens: int) -> WriteOp:
    source = "computed" if cost is not None else "unpriced"
    row = (sid, task_id, seq, "2026-11-22T10:00:00Z", "m", None, tokens, 1, 2, 3, cost, source)
    return ("usage", row)


def _interrupted_session(store: SessionStore, job: JobFile) -> str:
    fresh = plan_session(store, job)
    sid = fresh.session_id
    store.write_batch(
        [
            ("task_upsert", (sid, "done", "", "queued", 0)),
            ("task_started", (1, "2026-11-22T10:00:00Z", sid, "done")),
            ("task_ended", ("completed", "t", 1.0, 0, None, sid, "done")),
            ("task_upsert", (sid, "was-running", "", "queued", 0)),
            ("task_started", (2, "2026-11-22T10:00:01Z", sid, "was-running")),
            ("task_upsert", (sid, "queued", "", "queued", 0)),
            ("task_upsert", (sid, "broken", "", "queued", 0)),
            ("task_ended", ("failed", "t", 1.0, 3, "exit code 3", sid, "broken")),
            ("task_upsert", (sid, "stopped", "", "queued", 0)),
            ("task_ended", ("cancelled", "t", None, None, "interrupted by SIGINT", sid, "stopped")),
            _usage(sid, "done", 10, 0.5, 100),
            _usage(sid, "was-running", 11, None, 40),
            ("budget", (4.0, sid)),
            ("paused", (1, sid)),
            ("snapshot", ("2026-11-22T10:00:00.000000Z", 42, 1, 1, 0, sid)),
        ]
    )
    store.end_session(sid, status="interrupted")
    return sid


def test_a_new_job_begins_a_new_session(job: JobFile) -> None:
    store = SessionStore.open(":memory:")
    plan = plan_session(store, job)
    assert not plan.resumed
    assert [spec.id for spec, used in plan.to_run] == [
        "done",
        "was-running",
        "queued",
        "broken",
        "stopped",
        "task-6",
    ]
    assert plan.budget_usd == 3.0
    assert store.session(plan.session_id).job_key == job_key(job)


def test_resume_skips_finished_tasks_and_restores_totals(job: JobFile) -> None:
    store = SessionStore.open(":memory:")
    sid = _interrupted_session(store, job)
    plan = plan_session(store, job)
    assert plan.resumed
    assert plan.session_id == sid
    assert {spec.id: used for spec, used in plan.to_run} == {
        "was-running": 2,
        "queued": 0,
        "stopped": 0,
        "task-6": 0,
    }
    assert plan.kept_outcomes == {"done": "completed", "broken": "failed"}
    previous = plan.previous
    assert previous is not None
    assert previous.session_id == sid
    assert previous.duration_seconds == 42
    assert previous.input_tokens == 140
    assert previous.total_tokens == 140 + 2 * (1 + 2 + 3)
    assert previous.estimated_cost_usd == 0.5
    assert previous.unpriced_tokens == 46
    assert (previous.tasks_completed, previous.tasks_failed) == (1, 1)
    assert previous.is_paused is True
    assert plan.is_paused is True
    assert plan.budget_usd == 4.0  # the operator's raised budget survives, not the file's
    assert previous.budget_remaining_usd == 3.5
    assert plan.spent_usd == 0.5
    assert plan.last_seq == 11
    states = {task.task_id: task.state for task in store.tasks(sid)}
    assert states["was-running"] == "interrupted"


def test_fresh_and_finished_sessions_are_not_resumed(job: JobFile) -> None:
    store = SessionStore.open(":memory:")
    sid = _interrupted_session(store, job)
    fresh = plan_session(store, job, fresh=True)
    assert not fresh.resumed
    assert fresh.session_id != sid
    # The fresh session is now the job's newest unfinished one.
    assert plan_session(store, job).session_id == fresh.session_id
    store.end_session(sid, status="finished")
    store.end_session(fresh.session_id, status="finished")
    later = plan_session(store, job)
    assert not later.resumed
    assert later.session_id not in (sid, fresh.session_id)


def test_a_different_job_is_a_different_session(job: JobFile, tmp_path: Path) -> None:
    store = SessionStore.open(":memory:")
    _interrupted_session(store, job)
    other = tmp_path / "other.toml"
    other.write_text('[[task]]\nid = "x"\ncommand = ["true"]\n')
    assert not plan_session(store, load_job_file(other)).resumed
