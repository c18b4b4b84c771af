"""Behaviour kept by the per-event fast paths (bench §2): lazy end events, listener
tuples, metrics sharing the broadcaster's aggregate."""

from __future__ import annotations

import functools

import pytest
import trio
import trio.testing
from prometheus_client import CollectorRegistry

from broadcaster import RuncastMetrics, SessionBroadcaster, serve_broadcaster
from events import (
    Published,
    Publisher,
    TaskCompleted,
    TaskOutput,
    TaskQueued,
    TaskStarted,
    TaskUsage,
)
from executor import TaskCancelledError, TaskContext, TaskFailedError, open_executor


async def returns(ctx: TaskContext, value: str) -> str:
    return value


async def fails(ctx: TaskContext) -> None:
    raise ValueError("boom")


async def parks(ctx: TaskContext, gate: trio.Event) -> str:
    await gate.wait()
    return ctx.task_id


async def test_waiting_after_the_end_gives_the_outcome_and_checkpoints() -> None:
    async with open_executor(Publisher()) as executor:
        ok = executor.submit(returns, "v", task_id="ok")
        bad = executor.submit(fails, task_id="bad")
        gone = executor.submit(returns, "never", task_id="gone")
        assert gone.cancel()
        await executor.join()
        # Nobody waited while they ran: the outcome is read from the record.
        with trio.testing.assert_checkpoints():
            assert await ok.wait() == "v"
        with pytest.raises(TaskFailedError, match="ValueError: boom"):
            await bad.wait()
        with pytest.raises(TaskCancelledError):
            await gone.wait()


async def test_every_waiter_before_the_end_is_woken() -> None:
    gate = trio.Event()
    results: list[str] = []
    async with open_executor(Publisher()) as executor:
        handle = executor.submit(parks, gate, task_id="p")

        async def waiter() -> None:
            results.append(await handle.wait())

        with trio.fail_after(5):  # a waiter never woken would hang here
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(waiter)
                await trio.testing.wait_all_tasks_blocked()
                assert results == []
                gate.set()
    assert results == ["p", "p", "p"]


def _line(n: int) -> TaskOutput:
    return TaskOutput(task_id="a", line=str(n))


def test_listeners_changed_during_a_publish_apply_from_the_next_event() -> None:
    publisher = Publisher()
    seen: dict[str, list[int]] = {"first": [], "late": []}
    removers: list[object] = []

    def late(item: Published) -> None:
        seen["late"].append(item.seq)

    def first(item: Published) -> None:
        seen["first"].append(item.seq)
        if item.seq == 1:
            removers.append(publisher.add_listener(late))
        if item.seq == 2:
            remove_first()

    remove_first = publisher.add_listener(first)
    for n in range(3):
        publisher.publish(_line(n))
    # ``late`` was added while event 1 was delivered: it sees 2 and 3 only.
    # ``first`` removed itself while event 2 was delivered: it saw 1 and 2 only.
    assert seen == {"first": [1, 2], "late": [2, 3]}
    assert len(removers) == 1


async def _served(
    publisher: Publisher, metrics: RuncastMetrics, nursery: trio.Nursery
) -> SessionBroadcaster:
    started: SessionBroadcaster = await nursery.start(
        functools.partial(serve_broadcaster, publisher, metrics=metrics)
    )
    return started


def _script(publisher: Publisher) -> None:
    publisher.publish(TaskQueued(task_id="a"))
    publisher.publish(TaskStarted(task_id="a"))
    publisher.publish(TaskUsage(task_id="a", model="m", input_tokens=5, cost_usd=0.5))
    publisher.publish(TaskCompleted(task_id="a", duration_seconds=2.0))
    publisher.publish(TaskQueued(task_id="b"))


async def test_served_metrics_share_the_broadcasters_aggregate_and_count_the_same(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = Publisher()
    shared = RuncastMetrics(CollectorRegistry(), publisher)
    async with trio.open_nursery() as nursery:
        broadcaster = await _served(publisher, shared, nursery)
        # A second metrics object on its own listener, as a reference.
        alone = RuncastMetrics(CollectorRegistry(), publisher)
        assert shared.following
        assert shared.aggregate is broadcaster.aggregate
        assert not alone.following
        assert alone.aggregate is not broadcaster.aggregate
        _script(publisher)
        await trio.sleep(1)  # the broadcaster's updates go out (counted by both)
        nursery.cancel_scope.cancel()
    # Stopped: the final flush was counted, and our own listener is back.
    assert not shared.following
    publisher.publish(TaskStarted(task_id="b"))
    for metrics in (shared, alone):
        assert metrics.aggregate.tasks_running == 1
        assert metrics.aggregate.input_tokens == 5  # applied once, not by both
        assert metrics.aggregate.ended("completed") == 1
        assert metrics.tasks_ended["completed"] == 1
        assert metrics.models["m", "unknown"].tokens[0] == 5
    assert shared.events_published == alone.events_published
    assert shared.events_published["session_update"] >= 1
    assert shared.task_durations.sum == alone.task_durations.sum == 2.0


async def test_metrics_that_already_counted_or_closed_do_not_follow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = Publisher()
    counted = RuncastMetrics(CollectorRegistry(), publisher)
    publisher.publish(TaskQueued(task_id="early"))
    closed = RuncastMetrics(CollectorRegistry(), Publisher())
    closed.close()
    async with trio.open_nursery() as nursery:
        broadcaster = await _served(publisher, counted, nursery)
        assert not counted.following
        assert counted.aggregate is not broadcaster.aggregate
        publisher.publish(TaskStarted(task_id="early"))
        assert counted.aggregate.tasks_running == broadcaster.aggregate.tasks_running == 1
        nursery.cancel_scope.cancel()
    assert closed.follow(broadcaster.aggregate) is None


async def test_closing_followed_metrics_stops_their_counting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = Publisher()
    metrics = RuncastMetrics(CollectorRegistry(), publisher)
    async with trio.open_nursery() as nursery:
        await _served(publisher, metrics, nursery)
        publisher.publish(TaskQueued(task_id="a"))
        metrics.close()
        publisher.publish(TaskQueued(task_id="b"))
        nursery.cancel_scope.cancel()
    publisher.publish(TaskQueued(task_id="c"))
    assert metrics.events_published["task_queued"] == 1


async def uses(ctx: TaskContext) -> int:
    ctx.record_usage(model="m", input_tokens=3, output_tokens=4, cost_usd=0.25)
    ctx.set_exit_code(0)
    return 0


async def test_finished_tasks_info_is_built_from_their_kept_values() -> None:
    async with open_executor(Publisher(), keep_finished=5) as executor:
        executor.submit(uses, task_id="u", name="usage", priority=2)
        executor.submit(fails, task_id="f")
        running = executor.submit(parks, trio.Event(), task_id="r")
        await trio.testing.wait_all_tasks_blocked()
        live = running.info()
        running.cancel()
    used, failed, cancelled = executor.tasks()
    assert (used.task_id, used.name, used.state, used.attempts, used.priority) == (
        "u",
        "usage",
        "completed",
        1,
        2,
    )
    assert (used.input_tokens, used.output_tokens, used.estimated_cost_usd) == (3, 4, 0.25)
    assert (used.exit_code, used.error) == (0, None)
    assert used.started_at is not None
    assert used.ended_at is not None
    assert used.ended_at >= used.started_at
    assert (failed.state, failed.error) == ("failed", "ValueError: boom")
    assert cancelled.state == "cancelled"
    assert cancelled.started_at == live.started_at
    assert executor.task("u") == used
