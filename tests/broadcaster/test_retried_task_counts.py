"""An operator's retry of an ended task moves it out of its end count (aggregate and metrics)."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from prometheus_client import CollectorRegistry

from broadcaster import RuncastMetrics, SessionAggregate, Trigger
from events import Event, Published, Publisher, TaskCancelled, TaskFailed, TaskQueued, TaskStarted
from executor import TaskContext, TaskFailedError, open_executor


async def fails_first(ctx: TaskContext, calls: list[int]) -> str:
    calls.append(1)
    if len(calls) == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


async def test_a_retried_failed_task_leaves_the_failed_count_in_the_update_and_metrics(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = Publisher()
    aggregate = SessionAggregate(session_id="s")

    def listener(item: Published) -> None:
        aggregate.apply(item)

    publisher.add_listener(listener)
    calls: list[int] = []
    metrics = RuncastMetrics(CollectorRegistry(), publisher)
    try:
        async with open_executor(publisher, concurrency=1) as executor:
            with pytest.raises(TaskFailedError):
                await executor.submit(fails_first, calls, task_id="t").wait()
            assert aggregate.snapshot().tasks_failed == 1
            handle = executor.retry("t")
            assert (aggregate.snapshot().tasks_failed, aggregate.tasks_running) == (0, 1)
            await handle.wait()
        update = aggregate.snapshot()
        assert (update.tasks_completed, update.tasks_failed) == (1, 0)
        assert metrics.tasks_ended == {"cancelled": 0, "completed": 1, "failed": 1}
        assert metrics.tasks_retried == {"cancelled": 0, "completed": 0, "failed": 1}
        assert metrics.aggregate.ended("failed") == 0
    finally:
        metrics.close()


def _apply(aggregate: SessionAggregate, *events: Event) -> list[Trigger | None]:
    triggers: list[Trigger | None] = []

    def listener(item: Published) -> None:
        triggers.append(aggregate.apply(item))

    publisher = Publisher()
    publisher.add_listener(listener)
    for event in events:
        publisher.publish(event)
    return triggers


async def test_only_a_later_attempt_queued_for_a_failed_or_cancelled_task_reopens_it() -> None:
    aggregate = SessionAggregate(session_id="s")
    triggers = _apply(
        aggregate,
        TaskQueued(task_id="f"),
        TaskStarted(task_id="f"),
        TaskFailed(task_id="f", error="x"),
        TaskQueued(task_id="f", attempt=1),  # late: the end stands
        TaskQueued(task_id="c", attempt=1),
        TaskCancelled(task_id="c"),
        TaskQueued(task_id="c", attempt=1),  # the cancelled attempt's own: stands
    )
    assert triggers[3] is None
    assert triggers[-1] is None
    assert (aggregate.ended("failed"), aggregate.ended("cancelled")) == (1, 1)
    assert _apply(aggregate, TaskQueued(task_id="f", attempt=2)) == ["task_retry"]
    assert _apply(aggregate, TaskQueued(task_id="c", attempt=2)) == ["task_retry"]
    assert (aggregate.ended("failed"), aggregate.ended("cancelled")) == (0, 0)
    assert aggregate.tasks_queued == 2
    assert aggregate.task_state("f") == "queued"
