"""The serve node's task table: /api/tasks rows folded from events, as the executor lists them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.cluster._tasks import TaskTable
from events import (
    Event,
    RelayPublisher,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskQueued,
    TaskRetrying,
    TaskStarted,
    TaskUsage,
)
from executor import TaskInfo

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class Stream:
    """Events as a serve node reads them: numbered from ``first`` on, a second apart."""

    def __init__(self, table: TaskTable, first: int = 1) -> None:
        self.publisher = RelayPublisher()
        self.publisher.add_listener(table.apply)
        self.seq = first - 1

    def add(self, *events: Event) -> None:
        for event in events:
            self.seq += 1
            self.publisher.publish_at(self.seq, T0 + timedelta(seconds=self.seq), event)


def _at(seq: int) -> datetime:
    return T0 + timedelta(seconds=seq)


def test_a_task_run_to_its_end_is_listed_as_the_executor_lists_it() -> None:
    table = TaskTable()
    stream = Stream(table)
    stream.add(
        TaskQueued(task_id="a", name="alpha", priority=3),
        TaskStarted(task_id="a", name="alpha", attempt=1),
        TaskUsage(task_id="a", input_tokens=10, output_tokens=5, cache_read_tokens=2, cost_usd=0.5),
        TaskUsage(task_id="a", input_tokens=1, cache_write_tokens=4),  # unpriced
        TaskCompleted(task_id="a", attempt=1, exit_code=0),
    )
    assert table.tasks() == [
        TaskInfo(
            task_id="a",
            name="alpha",
            state="completed",
            attempts=1,
            started_at=_at(2),
            ended_at=_at(5),
            input_tokens=11,
            output_tokens=5,
            cache_read_tokens=2,
            cache_write_tokens=4,
            estimated_cost_usd=0.5,
            error=None,
            exit_code=0,
            priority=3,
            unpriced_tokens=5,
        )
    ]


def test_retries_failures_and_cancels_take_the_states_and_errors_they_say() -> None:
    table = TaskTable()
    stream = Stream(table)
    stream.add(
        TaskQueued(task_id="r"),
        TaskQueued(task_id="f"),
        TaskQueued(task_id="c"),
        TaskStarted(task_id="r", attempt=1),
        TaskRetrying(task_id="r", attempt=1, error="interrupted: worker w1 stopped renewing"),
    )
    assert [(t.task_id, t.state, t.attempts) for t in table.tasks()] == [
        ("r", "retrying", 1),
        ("f", "queued", 0),
        ("c", "queued", 0),
    ]
    stream.add(
        TaskStarted(task_id="r", attempt=2),
        TaskStarted(task_id="f", attempt=1),
        TaskFailed(task_id="f", attempt=1, error="exit 3", exit_code=3),
        TaskCancelled(task_id="c", reason="cancelled by operator"),
    )
    rows = {t.task_id: t for t in table.tasks()}
    assert (rows["r"].state, rows["r"].attempts, rows["r"].started_at) == ("running", 2, _at(4))
    assert (rows["f"].state, rows["f"].error, rows["f"].exit_code) == ("failed", "exit 3", 3)
    assert (rows["c"].state, rows["c"].error, rows["c"].ended_at) == (
        "cancelled",
        "cancelled by operator",
        _at(9),
    )


def test_an_end_is_final_but_an_operators_retry_reopens_a_failed_task_in_its_place() -> None:
    table = TaskTable()
    stream = Stream(table)
    stream.add(
        TaskQueued(task_id="a"),
        TaskQueued(task_id="b"),
        TaskStarted(task_id="a", attempt=1),
        TaskFailed(task_id="a", attempt=1, error="boom", exit_code=1),
        TaskStarted(task_id="a", attempt=1),  # a late duplicate: ignored
        TaskQueued(task_id="a", attempt=1),  # not a later attempt: ignored
    )
    assert table.tasks()[0].state == "failed"
    stream.add(TaskQueued(task_id="a", attempt=2))
    first = table.tasks()[0]
    assert (first.task_id, first.state, first.error, first.ended_at) == ("a", "queued", None, None)
    assert [t.task_id for t in table.tasks()] == ["a", "b"]
    stream.add(TaskStarted(task_id="a", attempt=2), TaskCompleted(task_id="a", attempt=2))
    assert table.tasks()[0].state == "completed"
    stream.add(TaskQueued(task_id="a", attempt=3))  # a completed task is not retried
    assert table.tasks()[0].state == "completed"


def test_the_retry_attempt_numbers_on_past_an_announced_attempt_that_never_ran() -> None:
    table = TaskTable()
    stream = Stream(table)
    stream.add(TaskQueued(task_id="a"), TaskCancelled(task_id="a"))
    row = table.row("a")
    assert row is not None
    assert (row.attempts, row.last_attempt) == (0, 1)


def test_pages_follow_announcement_order_with_the_seq_as_cursor() -> None:
    table = TaskTable()
    stream = Stream(table, first=100)
    stream.add(*(TaskQueued(task_id=f"t{n}") for n in range(5)))
    stream.add(TaskStarted(task_id="t1"), TaskStarted(task_id="t3"))
    first = table.task_page(limit=2)
    assert [t.task_id for t in first.tasks] == ["t0", "t1"]
    assert first.next_after == 101  # t1 was announced by event 101
    rest = table.task_page(after=first.next_after, limit=10)
    assert [t.task_id for t in rest.tasks] == ["t2", "t3", "t4"]
    assert rest.next_after is None
    running = table.task_page(limit=10, states={"running"})
    assert [t.task_id for t in running.tasks] == ["t1", "t3"]
    with pytest.raises(Exception, match="limit must be an int >= 1, got 0"):
        table.task_page(limit=0)


def test_finished_tasks_beyond_the_bound_are_counted_and_still_known() -> None:
    table = TaskTable(keep_finished=2)
    stream = Stream(table)
    for n in range(4):
        stream.add(TaskQueued(task_id=f"t{n}"), TaskCancelled(task_id=f"t{n}"))
    stream.add(TaskQueued(task_id="live"))
    assert [t.task_id for t in table.tasks()] == ["t2", "t3", "live"]
    assert table.finished_evicted == 2
    assert table.has_task("t0")
    assert table.row("t0") is None
    assert not table.has_task("never")
    stream.add(TaskUsage(task_id="t0", input_tokens=5))  # about a forgotten task: no new row
    assert len(table) == 3


def test_an_event_about_a_task_whose_announcement_was_trimmed_starts_its_row() -> None:
    table = TaskTable()
    stream = Stream(table, first=500)
    stream.add(
        TaskStarted(task_id="x", name="ex", attempt=2), TaskUsage(task_id="x", output_tokens=7)
    )
    (row,) = table.tasks()
    assert (row.name, row.state, row.attempts, row.output_tokens) == ("ex", "running", 2, 7)
