"""The executor's Python-task behaviour, on trio's mock clock."""

from __future__ import annotations

from typing import TypeVar

import pytest
import trio
import trio.testing

from events import (
    Event,
    ExecutorPaused,
    ExecutorResumed,
    Published,
    Publisher,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskQueued,
    TaskRetrying,
    TaskStarted,
)
from executor import (
    DuplicateTaskError,
    Executor,
    ExecutorClosedError,
    InvalidArgumentError,
    InvalidTransitionError,
    TaskCancelledError,
    TaskContext,
    TaskFailedError,
    UnknownTaskError,
    check_transition,
    open_executor,
)

E = TypeVar("E", bound=Event)


class Recorder:
    """Every published event, in order (listeners never miss one)."""

    def __init__(self, publisher: Publisher) -> None:
        self.items: list[Published] = []
        publisher.add_listener(self.items.append)

    def events(self, kind: type[E]) -> list[E]:
        return [p.event for p in self.items if isinstance(p.event, kind)]

    def names(self, task_id: str | None = None) -> list[str]:
        return [p.event_name for p in self.items if task_id is None or p.event.task_id == task_id]

    def started(self) -> list[str]:
        return [e.task_id for e in self.events(TaskStarted)]


@pytest.fixture
def publisher() -> Publisher:
    return Publisher()


@pytest.fixture
def recorder(publisher: Publisher) -> Recorder:
    return Recorder(publisher)


async def sleeper(ctx: TaskContext, seconds: float) -> str:
    await trio.sleep(seconds)
    return ctx.task_id


async def wait_for(ctx: TaskContext, gate: trio.Event) -> str:
    await gate.wait()
    return ctx.task_id


async def test_task_returns_its_result_and_publishes_each_transition(
    publisher: Publisher, recorder: Recorder, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_executor(publisher) as executor:
        handle = executor.submit(sleeper, 2.0, task_id="a", name="nap")
        assert await handle.wait() == "a"
    assert recorder.names("a") == ["task_queued", "task_started", "task_completed"]
    completed = recorder.events(TaskCompleted)[0]
    assert isinstance(completed, TaskCompleted)
    assert completed.duration_seconds == pytest.approx(2.0)
    [info] = executor.tasks()
    assert (info.state, info.attempts, info.name) == ("completed", 1, "nap")
    assert info.started_at is not None
    assert info.ended_at is not None


async def test_concurrency_limit_is_held_and_tasks_start_in_submission_order(
    publisher: Publisher, recorder: Recorder, autojump_clock: trio.testing.MockClock
) -> None:
    running = 0
    peak = 0

    async def tracked(ctx: TaskContext, seconds: float) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        assert executor.running_count <= 3
        await trio.sleep(seconds)
        running -= 1

    async with open_executor(publisher, concurrency=3) as executor:
        for index in range(10):
            executor.submit(tracked, 1.0 + index % 3, task_id=f"t{index}")
        await trio.testing.wait_all_tasks_blocked()
        assert executor.running_count == 3
        assert [t.state for t in executor.tasks()].count("queued") == 7
    assert peak == 3
    assert recorder.started() == [f"t{index}" for index in range(10)]
    assert executor.running_count == 0


async def test_higher_priority_starts_first_then_fifo(
    publisher: Publisher, recorder: Recorder
) -> None:
    gate = trio.Event()
    async with open_executor(publisher, concurrency=1, start_paused=True) as executor:
        for task_id, priority in [("low1", 0), ("high", 5), ("low2", 0), ("mid", 1)]:
            executor.submit(wait_for, gate, task_id=task_id, priority=priority)
        executor.resume()
        gate.set()
    assert recorder.started() == ["high", "mid", "low1", "low2"]


async def test_pause_blocks_starts_and_resume_releases_them_in_order(
    publisher: Publisher, recorder: Recorder, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_executor(publisher, concurrency=2) as executor:
        first = executor.submit(sleeper, 5.0, task_id="first")
        await trio.testing.wait_all_tasks_blocked()
        executor.pause(reason="review")
        executor.pause(reason="twice")  # idempotent: no second event
        for index in range(4):
            executor.submit(sleeper, 1.0, task_id=f"q{index}")
        await trio.sleep(10)  # "first" keeps running and finishes while paused
        assert first.state == "completed"
        assert recorder.started() == ["first"]
        assert executor.is_paused
        executor.resume(reason="go")
        executor.resume()  # idempotent
        assert not executor.is_paused
    assert recorder.started() == ["first", "q0", "q1", "q2", "q3"]
    paused = recorder.events(ExecutorPaused)
    resumed = recorder.events(ExecutorResumed)
    assert [(e.by, e.reason) for e in paused] == [("operator", "review")]
    assert [(e.by, e.reason) for e in resumed] == [("operator", "go")]


async def test_start_paused_lets_the_queue_be_reviewed(
    publisher: Publisher, recorder: Recorder
) -> None:
    async with open_executor(publisher, start_paused=True) as executor:
        executor.submit(sleeper, 0, task_id="a")
        await trio.testing.wait_all_tasks_blocked()
        assert [t.state for t in executor.tasks()] == ["queued"]
        executor.resume()
    [paused] = recorder.events(ExecutorPaused)
    assert paused.by == "startup"
    assert recorder.started() == ["a"]


async def test_task_waits_at_its_pause_point(
    publisher: Publisher, autojump_clock: trio.testing.MockClock
) -> None:
    steps: list[float] = []

    async def stepper(ctx: TaskContext) -> None:
        for _ in range(3):
            await ctx.wait_if_paused()
            steps.append(trio.current_time())
            await trio.sleep(1)

    async with open_executor(publisher) as executor:
        executor.submit(stepper)
        await trio.sleep(0.5)
        executor.pause()
        await trio.sleep(10)
        assert len(steps) == 1  # the second step waits at the pause point
        executor.resume()
    assert steps[1] - steps[0] == pytest.approx(10.5)


async def test_timeout_fails_the_task_with_the_reason(
    publisher: Publisher, recorder: Recorder, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_executor(publisher) as executor:
        handle = executor.submit(sleeper, 100.0, task_id="slow", timeout=3.0)
        with pytest.raises(TaskFailedError) as caught:
            await handle.wait()
    assert caught.value.timed_out
    assert trio.current_time() == pytest.approx(3.0)
    [failed] = recorder.events(TaskFailed)
    assert isinstance(failed, TaskFailed)
    assert failed.timed_out
    assert "timed out after 3.0s" in failed.error
    assert executor.task("slow").state == "failed"


async def test_exception_fails_the_task_and_wait_raises_from_it(
    publisher: Publisher, recorder: Recorder
) -> None:
    async def broken(ctx: TaskContext) -> None:
        raise RuntimeError("model said no")

    async with open_executor(publisher) as executor:
        handle = executor.submit(broken, task_id="b")
        with pytest.raises(TaskFailedError, match="model said no") as caught:
            await handle.wait()
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert not caught.value.timed_out
    assert executor.task("b").error == "RuntimeError: model said no"
    assert recorder.names("b") == ["task_queued", "task_started", "task_failed"]


async def test_cancel_queued_and_running_tasks_by_id(
    publisher: Publisher, recorder: Recorder, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_executor(publisher, concurrency=1) as executor:
        running = executor.submit(sleeper, 100.0, task_id="running")
        queued = executor.submit(sleeper, 1.0, task_id="queued")
        after = executor.submit(sleeper, 1.0, task_id="after")
        await trio.testing.wait_all_tasks_blocked()
        assert executor.cancel("queued", reason="not needed")
        assert queued.state == "cancelled"
        assert running.cancel()
        assert not running.cancel()  # already being cancelled
        with pytest.raises(UnknownTaskError, match="nope"):
            executor.cancel("nope")
        with pytest.raises(TaskCancelledError, match="cancelled by operator"):
            await running.wait()
        with pytest.raises(TaskCancelledError, match="not needed"):
            await queued.wait()
        assert await after.wait() == "after"
    assert not executor.cancel("after")  # ended already
    cancelled = {e.task_id: e for e in recorder.events(TaskCancelled)}
    assert cancelled["queued"].was_running is False
    assert cancelled["running"].was_running is True
    assert recorder.started() == ["running", "after"]
    assert trio.current_time() == pytest.approx(1.0)


async def test_retries_back_off_exponentially_on_the_mock_clock(
    publisher: Publisher, recorder: Recorder, autojump_clock: trio.testing.MockClock
) -> None:
    attempt_times: list[float] = []

    async def flaky(ctx: TaskContext) -> int:
        attempt_times.append(trio.current_time())
        if ctx.attempt < 3:
            raise ConnectionError(f"attempt {ctx.attempt} dropped")
        return ctx.attempt

    async with open_executor(publisher, retry_backoff=2.0) as executor:
        handle = executor.submit(flaky, task_id="f", retries=3)
        assert await handle.wait() == 3
    assert attempt_times == pytest.approx([0.0, 2.0, 6.0])
    retrying = recorder.events(TaskRetrying)
    assert [e.delay_seconds for e in retrying] == [2.0, 4.0]
    assert "attempt 1 dropped" in retrying[0].error
    assert recorder.names("f") == [
        "task_queued",
        "task_started",
        "task_retrying",
        "task_queued",
        "task_started",
        "task_retrying",
        "task_queued",
        "task_started",
        "task_completed",
    ]
    assert executor.task("f").attempts == 3
    assert [e.attempt for e in recorder.events(TaskQueued)] == [1, 2, 3]


async def test_retries_run_out_and_the_task_fails(
    publisher: Publisher, autojump_clock: trio.testing.MockClock
) -> None:
    async def always_broken(ctx: TaskContext) -> None:
        raise ValueError("bad")

    async with open_executor(publisher, retry_backoff=1.0) as executor:
        handle = executor.submit(always_broken, retries=1)
        with pytest.raises(TaskFailedError):
            await handle.wait()
    assert executor.tasks()[0].attempts == 2


async def test_cancel_during_retry_backoff(
    publisher: Publisher, recorder: Recorder, autojump_clock: trio.testing.MockClock
) -> None:
    async def broken(ctx: TaskContext) -> None:
        raise ValueError("bad")

    async with open_executor(publisher, retry_backoff=50.0) as executor:
        handle = executor.submit(broken, task_id="r", retries=2)
        await trio.sleep(1)
        assert handle.state == "retrying"
        executor.cancel("r")
        assert executor.task("r").state == "cancelled"
    assert trio.current_time() == pytest.approx(1.0)
    assert recorder.names("r")[-2:] == ["task_retrying", "task_cancelled"]


async def test_leaving_the_block_with_an_error_cancels_every_task(
    publisher: Publisher, recorder: Recorder, autojump_clock: trio.testing.MockClock
) -> None:
    async def body() -> Executor:
        async with open_executor(publisher, concurrency=1) as executor:
            executor.submit(sleeper, 100.0, task_id="running")
            executor.submit(sleeper, 100.0, task_id="queued")
            await trio.sleep(1)
            raise KeyError(executor)
        raise AssertionError("unreachable")  # pragma: no cover

    with pytest.raises(KeyError) as caught:
        await body()
    executor = caught.value.args[0]
    assert isinstance(executor, Executor)
    assert {t.task_id: t.state for t in executor.tasks()} == {
        "running": "cancelled",
        "queued": "cancelled",
    }
    assert recorder.started() == ["running"]
    with pytest.raises(ExecutorClosedError):
        executor.submit(sleeper, 1.0)


async def test_outer_cancellation_marks_running_tasks_cancelled(
    publisher: Publisher, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.move_on_after(5):
        async with open_executor(publisher) as executor:
            executor.submit(sleeper, 100.0, task_id="long")
    assert executor.task("long").state == "cancelled"
    assert executor.running_count == 0


async def test_join_waits_for_tasks_submitted_so_far(
    publisher: Publisher, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_executor(publisher) as executor:
        await executor.join()  # nothing yet: returns at once
        executor.submit(sleeper, 4.0)
        await executor.join()
        assert trio.current_time() == pytest.approx(4.0)
        assert executor.tasks()[0].state == "completed"


async def test_bad_submissions_are_refused_with_clear_errors(publisher: Publisher) -> None:
    async with open_executor(publisher) as executor:
        executor.submit(sleeper, 0, task_id="dup")
        with pytest.raises(DuplicateTaskError, match="'dup' is already in use"):
            executor.submit(sleeper, 0, task_id="dup")
        with pytest.raises(InvalidArgumentError, match="timeout"):
            executor.submit(sleeper, 0, timeout=-1)
        with pytest.raises(InvalidArgumentError, match="retries"):
            executor.submit(sleeper, 0, retries=-1)
        with pytest.raises(InvalidArgumentError, match="reserved"):
            executor.submit(sleeper, 0, task_id="*")
        with pytest.raises(InvalidArgumentError, match="by must be one of"):
            executor.pause(by="someone")
        with pytest.raises(InvalidArgumentError, match="budget_usd"):
            executor.set_budget(-1.0)
    with pytest.raises(InvalidArgumentError, match="concurrency"):
        async with open_executor(publisher, concurrency=0):
            pass  # pragma: no cover


async def test_generated_ids_skip_ids_in_use(publisher: Publisher) -> None:
    async with open_executor(publisher) as executor:
        executor.submit(sleeper, 0, task_id="task-2")
        ids = [executor.submit(sleeper, 0).task_id for _ in range(2)]
    assert ids == ["task-3", "task-4"]


def test_impossible_transitions_raise() -> None:
    check_transition("t", "queued", "running")
    check_transition("t", "retrying", "queued")
    for current, target in [
        ("completed", "running"),
        ("queued", "completed"),
        ("failed", "queued"),
    ]:
        with pytest.raises(InvalidTransitionError, match=f"from '{current}' to '{target}'"):
            check_transition("t", current, target)  # type: ignore[arg-type]


async def test_usage_after_the_attempt_ended_is_refused(publisher: Publisher) -> None:
    leaked: list[TaskContext] = []

    async def leak(ctx: TaskContext) -> None:
        leaked.append(ctx)

    async with open_executor(publisher) as executor:
        await executor.submit(leak).wait()
    with pytest.raises(Exception, match="after the attempt ended"):
        leaked[0].record_usage(model="m", input_tokens=1)
