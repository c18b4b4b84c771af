"""``Executor.retry``: an ended (failed, timed-out, cancelled) task runs again, numbered on."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from events import Publisher, TaskQueued, TaskStarted
from executor import (
    TaskContext,
    TaskFailedError,
    TaskNotRetriableError,
    UnknownTaskError,
    open_executor,
)


class Flaky:
    """Fails until ``fixed``; counts its calls."""

    def __init__(self) -> None:
        self.fixed = False
        self.calls = 0

    async def __call__(self, ctx: TaskContext) -> str:
        self.calls += 1
        ctx.record_usage(model="test-model", input_tokens=10, output_tokens=5)
        if not self.fixed:
            raise RuntimeError("not fixed yet")
        return "ok"


async def held(ctx: TaskContext, gate: trio.Event) -> None:
    await gate.wait()


async def noop(ctx: TaskContext) -> str:
    return "done"


async def test_a_failed_task_runs_again_as_the_next_attempt_and_keeps_its_usage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = Publisher()
    flaky = Flaky()
    async with open_executor(publisher, concurrency=2) as executor:
        with pytest.raises(TaskFailedError):
            await executor.submit(flaky, task_id="f").wait()
        failed = executor.task("f")
        assert (failed.state, failed.attempts, failed.error) == (
            "failed",
            1,
            "RuntimeError: not fixed yet",
        )
        seen: list[object] = []
        publisher.add_listener(lambda item: seen.append(item.event))
        flaky.fixed = True
        handle = executor.retry("f")
        assert executor.task("f").state == "running"  # a slot was free: started at once
        assert await handle.wait() == "ok"
        info = executor.task("f")
        assert (info.state, info.attempts, info.error) == ("completed", 2, None)
        assert info.input_tokens == 20  # both attempts' usage
        assert flaky.calls == 2
    queued = [e for e in seen if isinstance(e, TaskQueued)]
    started = [e for e in seen if isinstance(e, TaskStarted)]
    assert [e.attempt for e in queued] == [2]
    assert [e.attempt for e in started] == [2]


async def test_a_cancelled_and_a_timed_out_task_can_be_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = trio.Event()
    async with open_executor(Publisher(), concurrency=1) as executor:
        executor.submit(held, gate, task_id="blocker")
        executor.submit(noop, task_id="cancelled")
        executor.submit(held, trio.Event(), task_id="slow", timeout=5)
        assert executor.cancel("cancelled")
        gate.set()
        await executor.join()
        assert executor.task("slow").state == "failed"
        assert await executor.retry("cancelled").wait() == "done"
        # Its first attempt was announced, cancelled unrun: the retry numbers on past it.
        assert executor.task("cancelled").attempts == 2
        retried = executor.retry("slow")
        with pytest.raises(TaskFailedError, match="timed out"):
            await retried.wait()
        assert executor.task("slow").attempts == 2
        # Submission order is kept in the listing and the pages.
        assert [t.task_id for t in executor.tasks()] == ["blocker", "cancelled", "slow"]
        page = executor.task_page(limit=10)
        assert [t.task_id for t in page.tasks] == ["blocker", "cancelled", "slow"]


async def test_retry_refuses_a_live_a_completed_and_an_unknown_task_changing_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = trio.Event()
    async with open_executor(Publisher(), concurrency=1) as executor:
        await executor.submit(noop, task_id="done").wait()
        executor.submit(held, gate, task_id="running")
        executor.submit(noop, task_id="queued")
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(TaskNotRetriableError, match="'running' is running"):
            executor.retry("running")
        with pytest.raises(TaskNotRetriableError, match="'queued' is queued"):
            executor.retry("queued")
        with pytest.raises(TaskNotRetriableError, match="'done' is completed"):
            executor.retry("done")
        with pytest.raises(UnknownTaskError, match="no task with id 'nope'"):
            executor.retry("nope")
        assert [(t.task_id, t.state, t.attempts) for t in executor.tasks()] == [
            ("done", "completed", 1),
            ("running", "running", 1),
            ("queued", "queued", 0),
        ]
        gate.set()


async def test_a_task_no_longer_kept_cannot_be_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_executor(Publisher(), concurrency=1, keep_finished=1) as executor:
        flaky = Flaky()
        with pytest.raises(TaskFailedError):
            await executor.submit(flaky, task_id="old").wait()
        await executor.submit(noop, task_id="newer").wait()
        with pytest.raises(UnknownTaskError, match="'old' has ended and is no longer kept"):
            executor.retry("old")
