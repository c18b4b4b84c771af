"""The aggregate forgets ended tasks (bounded, counted); a held update is not starved."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import trio
import trio.testing

from broadcaster import BroadcasterConfigError, SessionAggregate, serve_broadcaster
from events import (
    Published,
    Publisher,
    SessionUpdate,
    TaskCompleted,
    TaskFailed,
    TaskQueued,
    TaskStarted,
)


def fed(aggregate: SessionAggregate) -> Publisher:
    publisher = Publisher(clock=lambda: datetime(2026, 11, 22, 10, 0, tzinfo=UTC))

    def listener(item: Published) -> None:
        aggregate.apply(item)

    publisher.add_listener(listener)
    return publisher


def run_task(publisher: Publisher, task_id: str, *, fail: bool = False) -> None:
    publisher.publish(TaskQueued(task_id=task_id))
    publisher.publish(TaskStarted(task_id=task_id))
    if fail:
        publisher.publish(TaskFailed(task_id=task_id, error="boom"))
    else:
        publisher.publish(TaskCompleted(task_id=task_id))


async def test_ended_tasks_are_forgotten_beyond_the_bound_and_counted() -> None:
    aggregate = SessionAggregate(session_id="s", remember_ended=3)
    publisher = fed(aggregate)
    for index in range(10):
        run_task(publisher, f"t{index}", fail=index % 5 == 0)
    publisher.publish(TaskQueued(task_id="live"))
    assert aggregate.ended_forgotten == 7
    assert (aggregate.ended("completed"), aggregate.ended("failed")) == (8, 2)
    assert (aggregate.tasks_running, aggregate.tasks_queued) == (0, 1)
    assert [aggregate.task_state(f"t{i}") for i in (0, 6, 7, 8, 9)] == [
        None,
        None,
        "completed",
        "completed",
        "completed",
    ]
    assert aggregate.task_state("live") == "queued"
    # A late duplicate of a remembered end changes nothing.
    publisher.publish(TaskCompleted(task_id="t9"))
    publisher.publish(TaskStarted(task_id="t8", attempt=2))
    assert aggregate.ended("completed") == 8
    assert aggregate.tasks_running == 0
    assert aggregate.snapshot().tasks_completed == 8


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_remember_ended_must_be_a_count(bad: object) -> None:
    with pytest.raises(BroadcasterConfigError, match="remember_ended must be an int >= 0"):
        SessionAggregate(session_id="s", remember_ended=bad)  # type: ignore[arg-type]


async def test_an_update_held_while_events_keep_coming_goes_out_inline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = Publisher()
    updates: list[SessionUpdate] = []

    def on_event(item: Published) -> None:
        if isinstance(item.event, SessionUpdate):
            updates.append(item.event)

    publisher.add_listener(on_event)
    async with trio.open_nursery() as nursery:
        broadcaster = await nursery.start(serve_broadcaster, publisher)
        await trio.sleep(1)
        run_task(publisher, "first")  # from idle: the start goes out at once
        assert [u.tasks_running for u in updates] == [1]
        # All in one task step, so the flusher cannot run: within max_hold the
        # end waits for it, as an end and the start it frees share one update ...
        publisher.publish(TaskQueued(task_id="a"))
        publisher.publish(TaskStarted(task_id="a"))
        assert len(updates) == 1
        autojump_clock.jump(broadcaster.min_spacing + broadcaster.max_hold / 2)
        publisher.publish(TaskCompleted(task_id="a"))
        assert len(updates) == 1
        # ... but once it is overdue by max_hold, the next change carries it out.
        autojump_clock.jump(broadcaster.max_hold)
        publisher.publish(TaskQueued(task_id="b"))
        assert len(updates) == 1  # no change to report: no trigger
        publisher.publish(TaskStarted(task_id="b"))
        assert len(updates) == 2
        assert (updates[-1].tasks_running, updates[-1].tasks_completed) == (1, 2)
        nursery.cancel_scope.cancel()
