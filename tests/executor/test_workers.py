"""Attempts run in long-lived workers: each attempt still cancellable and timed alone."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Generator
from typing import Any

import pytest
import trio
import trio.testing

from events import Published, Publisher, TaskCancelled
from executor import TaskCancelledError, TaskContext, TaskFailedError, open_executor

label: contextvars.ContextVar[str] = contextvars.ContextVar("label", default="unset")


async def sleeper(ctx: TaskContext, seconds: float) -> str:
    await trio.sleep(seconds)
    return ctx.task_id


async def test_at_most_concurrency_workers_run_every_attempt_and_all_end_with_the_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runners: list[trio.lowlevel.Task] = []

    async def note_runner(ctx: TaskContext) -> None:
        runners.append(trio.lowlevel.current_task())
        await trio.sleep(1)

    async with open_executor(Publisher(), concurrency=3) as executor:
        for _ in range(12):
            executor.submit(note_runner)
    assert len(runners) == 12
    assert len(set(runners)) == 3
    assert trio.current_time() == pytest.approx(4.0)
    assert executor._lifecycle.workers == 0


async def test_the_task_after_a_cancelled_one_in_the_same_worker_runs_uncancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def swallows_cancel(ctx: TaskContext) -> str:
        try:
            await trio.sleep(100)
        except trio.Cancelled:
            return "swallowed"
        raise AssertionError("not cancelled")  # pragma: no cover

    async with open_executor(Publisher(), concurrency=1) as executor:
        cut = executor.submit(sleeper, 100.0, task_id="cut")
        swallowing = executor.submit(swallows_cancel, task_id="swallowing")
        after = executor.submit(sleeper, 2.0, task_id="after")
        await trio.sleep(1)
        assert cut.cancel()
        await trio.sleep(1)
        assert swallowing.cancel()
        with pytest.raises(TaskCancelledError):
            await cut.wait()
        with pytest.raises(TaskCancelledError):
            await swallowing.wait()
        assert await after.wait() == "after"
    assert trio.current_time() == pytest.approx(4.0)


async def test_a_timeout_does_not_reach_the_next_task_of_the_worker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_executor(Publisher(), concurrency=1) as executor:
        quick = executor.submit(sleeper, 1.0, task_id="quick", timeout=2.0)
        slow = executor.submit(sleeper, 5.0, task_id="slow")
        timed_out = executor.submit(sleeper, 5.0, task_id="timed-out", timeout=1.5)
        last = executor.submit(sleeper, 3.0, task_id="last")
        assert await quick.wait() == "quick"
        assert await slow.wait() == "slow"
        with pytest.raises(TaskFailedError, match=r"timed out after 1\.5s"):
            await timed_out.wait()
        assert await last.wait() == "last"
    assert trio.current_time() == pytest.approx(1.0 + 5.0 + 1.5 + 3.0)


async def test_a_started_task_cancelled_before_a_worker_took_it_never_runs() -> None:
    ran: list[str] = []
    items: list[Published] = []
    publisher = Publisher()
    publisher.add_listener(items.append)

    async def note(ctx: TaskContext) -> None:
        ran.append(ctx.task_id)

    async with open_executor(publisher, concurrency=2) as executor:
        handle = executor.submit(note, task_id="a")
        assert handle.state == "running"  # started, waiting for its worker
        assert handle.cancel(reason="changed my mind")
        executor.submit(note, task_id="b")
        with pytest.raises(TaskCancelledError, match="changed my mind"):
            await handle.wait()
    assert ran == ["b"]
    [cancelled] = [p.event for p in items if isinstance(p.event, TaskCancelled)]
    assert cancelled.task_id == "a"
    assert cancelled.was_running


async def test_outer_cancellation_ends_running_and_waiting_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.move_on_after(5):
        async with open_executor(Publisher(), concurrency=2) as executor:
            for index in range(5):
                executor.submit(sleeper, 100.0, task_id=f"t{index}")
    assert {info.state for info in executor.tasks()} == {"cancelled"}
    assert executor.running_count == 0
    assert executor._lifecycle.workers == 0


async def _read_label() -> str:
    await trio.lowlevel.checkpoint()
    return label.get()


class _Answer:
    """An awaitable that is not a coroutine; reads the context variable when awaited."""

    def __await__(self) -> Generator[Any, None, str]:
        return (yield from _read_label().__await__())


def returns_awaitable(ctx: TaskContext) -> Awaitable[str]:
    return _Answer()


def returns_nothing(ctx: TaskContext) -> None:
    return None


async def test_functions_returning_awaitables_run_in_the_submitters_context() -> None:
    async with open_executor(Publisher(), concurrency=1) as executor:
        token = label.set("submitter")
        answered = executor.submit(returns_awaitable)
        label.reset(token)
        broken = executor.submit(returns_nothing)  # type: ignore[arg-type]
        assert await answered.wait() == "submitter"
        with pytest.raises(TaskFailedError, match="NoneType"):
            await broken.wait()
