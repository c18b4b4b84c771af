"""Planning a run against a store: new session, or continuing the job's unfinished one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from api.cli._resume import job_key, plan_session
from api.store._recorder import StoreRecorder
from api.store._store import SessionStore
from broadcaster import MAX_TOTAL_COST_USD, SessionBroadcaster
from events import (
    BudgetChanged,
    Event,
    ExecutorPaused,
    Publisher,
    SessionUpdate,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskQueued,
    TaskStarted,
    TaskUsage,
)
from executor import JobFile, load_job_file, open_executor

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
id = "stopped-running"
command = ["true"]
[[task]]
command = ["true"]
"""


@pytest.fixture
def job(tmp_path: Path) -> JobFile:
    path = tmp_path / "job.toml"
    path.write_text(JOB)
    return load_job_file(path)


def _usage(task_id: str, cost: float | None, tokens: int) -> TaskUsage:
    return TaskUsage(
        task_id=task_id,
        model="m",
        input_tokens=tokens,
        output_tokens=1,
        cache_read_tokens=2,
        cache_write_tokens=3,
        cost_usd=cost,
        cost_source="computed" if cost is not None else "unpriced",
    )


def _record(store: SessionStore, sid: str, events: list[Event]) -> Publisher:
    publisher = Publisher()
    recorder = StoreRecorder(store, sid)
    publisher.add_listener(recorder)
    for event in events:
        publisher.publish(event)
    recorder.write_now(recorder.pending)
    return publisher


def _interrupted_session(store: SessionStore, job: JobFile) -> str:
    fresh = plan_session(store, job)
    sid = fresh.session_id
    stop = "interrupted by SIGINT"
    _record(
        store,
        sid,
        [
            *(TaskQueued(task_id=task) for task in ("done", "was-running", "queued", "broken")),
            *(TaskQueued(task_id=task) for task in ("stopped", "stopped-running")),
            TaskStarted(task_id="done"),
            _usage("done", 0.5, 100),
            TaskCompleted(task_id="done", duration_seconds=1.0, exit_code=0),
            TaskStarted(task_id="was-running", attempt=2),
            _usage("was-running", None, 40),
            TaskStarted(task_id="broken"),
            TaskFailed(task_id="broken", error="exit code 3", exit_code=3),
            TaskCancelled(task_id="stopped", reason=stop),
            TaskStarted(task_id="stopped-running"),
            _usage("stopped-running", 0.25, 20),
            TaskCancelled(task_id="stopped-running", reason=stop, was_running=True),
            BudgetChanged(budget_usd=4.0),
            ExecutorPaused(),
            SessionUpdate(
                started_at=datetime(2026, 11, 22, 10, tzinfo=UTC),
                duration_seconds=42,
                tasks_completed=1,
                tasks_failed=1,
            ),
        ],
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
        "stopped-running",
        "task-7",
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
        "stopped-running": 1,
        "task-7": 0,
    }
    assert plan.kept_outcomes == {"done": "completed", "broken": "failed"}
    previous = plan.previous
    assert previous is not None
    assert previous.session_id == sid
    assert previous.duration_seconds == 42
    assert previous.input_tokens == 160
    assert previous.total_tokens == 160 + 3 * (1 + 2 + 3)
    assert previous.estimated_cost_usd == 0.75  # interrupted spend is real spend
    assert previous.unpriced_tokens == 46
    assert (previous.tasks_completed, previous.tasks_failed) == (1, 1)
    assert previous.is_paused is True
    assert plan.is_paused is True
    assert plan.budget_usd == 4.0  # the operator's raised budget survives, not the file's
    assert previous.budget_remaining_usd == 3.25
    assert plan.spent_usd == 0.75
    assert plan.last_seq == 19  # 20 events; the last, a snapshot, is not history
    # The attempts the stop cut short: the running one and the one cancelled while
    # running; not "stopped", which was cancelled while queued.
    assert store.interrupted_attempts(sid) == [("stopped-running", 1), ("was-running", 2)]
    assert plan.interrupted.total_tokens == 46 + 26
    assert plan.interrupted.cost_usd == 0.25
    assert plan.interrupted.records == 2
    assert store.usage_totals(sid, interrupted=False).total_tokens == 106
    states = {task.task_id: task.state for task in store.tasks(sid)}
    assert states["was-running"] == states["stopped-running"] == "interrupted"
    assert states["stopped"] == "cancelled"


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


async def test_a_session_whose_sums_pass_sqlite_and_float_ranges_resumes(job: JobFile) -> None:
    # Each record fits the store; their sums do not fit a SQLite INTEGER (2**63 - 1)
    # or a float (1e308 + 1e308 is inf): "integer overflow" and "must be finite" before.
    store = SessionStore.open(":memory:")
    sid = plan_session(store, job).session_id
    huge = [
        TaskUsage(
            task_id="done",
            model="m",
            input_tokens=6 * 10**18,
            cost_usd=1e308,
            cost_source="reported",
        )
        for _ in range(2)
    ]
    started = [
        BudgetChanged(budget_usd=3.0),
        TaskQueued(task_id="done"),
        TaskStarted(task_id="done"),
    ]
    _record(store, sid, [*started, *huge])
    plan = plan_session(store, job)
    assert plan.resumed
    previous = plan.previous
    assert previous is not None
    assert previous.input_tokens == previous.total_tokens == 12 * 10**18
    assert previous.estimated_cost_usd == plan.spent_usd == MAX_TOTAL_COST_USD
    assert previous.budget_remaining_usd == 0.0
    publisher = Publisher()
    broadcaster = SessionBroadcaster(publisher)
    broadcaster.restore(previous)
    assert broadcaster.snapshot().estimated_cost_usd == MAX_TOTAL_COST_USD
    async with open_executor(
        publisher, budget_usd=plan.budget_usd, spent_usd=plan.spent_usd, start_paused=True
    ) as executor:
        assert executor.spent_usd == MAX_TOTAL_COST_USD
