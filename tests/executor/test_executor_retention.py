"""What the executor keeps of finished tasks, and how a burst of starts is spread out."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from broadcaster import serve_broadcaster
from events import Published, Publisher, SessionUpdate, TaskStarted
from executor import (
    DEFAULT_KEEP_FINISHED,
    DuplicateTaskError,
    InvalidArgumentError,
    TaskContext,
    UnknownTaskError,
    open_executor,
)
from executor._lifecycle import FILL_CHUNK


async def noop(ctx: TaskContext) -> str:
    return ctx.task_id


async def held(ctx: TaskContext, gate: trio.Event) -> None:
    await gate.wait()


class Payload:
    """An argument (and a result) whose lifetime a weakref can watch."""


async def test_only_the_newest_finished_tasks_are_kept_and_the_rest_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = trio.Event()
    async with open_executor(Publisher(), concurrency=2, keep_finished=3) as executor:
        executor.submit(held, gate, task_id="live")
        for index in range(10):
            await executor.submit(noop, task_id=f"t{index}").wait()
        assert executor.finished_evicted == 7
        assert executor.keep_finished == 3
        # Live tasks first in submission order, then the three newest finished.
        assert [t.task_id for t in executor.tasks()] == ["live", "t7", "t8", "t9"]
        assert executor.task("t8").state == "completed"
        with pytest.raises(UnknownTaskError, match=r"'t0' has ended and is no longer kept"):
            executor.task("t0")
        with pytest.raises(UnknownTaskError, match="no task with id 'nope'"):
            executor.task("nope")
        assert executor.has_task("t0")
        assert not executor.has_task("nope")
        # A forgotten task's id stays reserved, and cancelling it says it had ended.
        with pytest.raises(DuplicateTaskError):
            executor.submit(noop, task_id="t0")
        assert executor.cancel("t0") is False
        with pytest.raises(UnknownTaskError):
            executor.cancel("nope")
        gate.set()
    assert executor.finished_evicted == 8
    assert [t.task_id for t in executor.tasks()] == ["live", "t8", "t9"]


async def test_tasks_lists_live_and_kept_tasks_in_submission_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gates = [trio.Event() for _ in range(4)]
    async with open_executor(Publisher(), concurrency=4) as executor:
        for index, gate in enumerate(gates):
            executor.submit(held, gate, task_id=f"t{index}")
        await trio.testing.wait_all_tasks_blocked()
        for index in (2, 0):  # end out of order
            gates[index].set()
            await trio.testing.wait_all_tasks_blocked()
        infos = executor.tasks()
        assert [t.task_id for t in infos] == ["t0", "t1", "t2", "t3"]
        assert [t.state for t in infos] == ["completed", "running", "completed", "running"]
        assert executor.waiting_count == 0
        gates[1].set()
        gates[3].set()
    assert executor.finished_evicted == 0
    assert DEFAULT_KEEP_FINISHED >= 1_000


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
async def test_keep_finished_must_be_a_count(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="keep_finished must be an int >= 0"):
        async with open_executor(Publisher(), keep_finished=bad):  # type: ignore[arg-type]
            pass


def make_task(
    result: Payload,
) -> tuple[Callable[[TaskContext, Payload], Awaitable[Payload]], weakref.ref[Payload]]:
    """A task function closing over a fresh object, and a weakref to that object."""
    captured = Payload()

    async def task(ctx: TaskContext, arg: Payload) -> Payload:
        assert captured is not arg
        return result

    return task, weakref.ref(captured)


async def test_an_ended_task_lets_go_of_its_function_and_arguments(
    autojump_clock: trio.testing.MockClock,
) -> None:
    argument, result = Payload(), Payload()
    argument_ref, result_ref = weakref.ref(argument), weakref.ref(result)
    task, closure_ref = make_task(result)
    async with open_executor(Publisher(), keep_finished=0) as executor:
        handle = executor.submit(task, argument, task_id="a")
        del argument, task, result
        gc.collect()
        assert argument_ref() is not None, "a live task keeps its argument"
        assert await handle.wait() is result_ref()
    gc.collect()
    assert argument_ref() is None, "the executor still holds the task's argument"
    assert closure_ref() is None, "the executor still holds the task's function"
    # The result lives as long as whoever holds the handle, and no longer.
    assert result_ref() is not None
    assert await handle.wait() is result_ref()
    del handle
    gc.collect()
    assert result_ref() is None


async def test_a_burst_of_starts_is_chunked_in_priority_order_and_within_concurrency(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = Publisher()
    started: list[str] = []

    def on_event(item: Published) -> None:
        if isinstance(item.event, TaskStarted):
            started.append(item.event.task_id)

    publisher.add_listener(on_event)
    gate = trio.Event()
    total, concurrency = 5 * FILL_CHUNK, 3 * FILL_CHUNK + 7
    async with open_executor(publisher, concurrency=concurrency, start_paused=True) as executor:
        for index in range(total):
            executor.submit(held, gate, task_id=f"t{index}", priority=index % 3)
        executor.resume()
        assert executor.running_count == FILL_CHUNK  # the rest after a checkpoint
        await trio.testing.wait_all_tasks_blocked()
        assert executor.running_count == concurrency
        assert executor.waiting_count == total - concurrency
        gate.set()
    expected = sorted(range(total), key=lambda index: (-(index % 3), index))
    assert started == [f"t{index}" for index in expected]


async def test_a_pause_between_chunks_stops_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = trio.Event()
    async with open_executor(Publisher(), concurrency=1_000, start_paused=True) as executor:
        for index in range(3 * FILL_CHUNK):
            executor.submit(held, gate, task_id=f"t{index}")
        executor.resume()
        executor.pause()
        await trio.testing.wait_all_tasks_blocked()
        assert executor.running_count == FILL_CHUNK
        executor.resume()
        await trio.testing.wait_all_tasks_blocked()
        assert executor.running_count == 3 * FILL_CHUNK
        gate.set()


async def test_the_first_session_update_of_a_burst_comes_after_the_first_chunk(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = Publisher()
    updates: list[SessionUpdate] = []

    def on_event(item: Published) -> None:
        if isinstance(item.event, SessionUpdate):
            updates.append(item.event)

    publisher.add_listener(on_event)
    gate = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_broadcaster, publisher)
        async with open_executor(publisher, concurrency=1_000, start_paused=True) as executor:
            for index in range(1_000):
                executor.submit(held, gate, task_id=f"t{index}")
            await trio.sleep(1)
            updates.clear()
            executor.resume()
            await trio.testing.wait_all_tasks_blocked()
            assert executor.running_count == 1_000
            # Sent between two chunks, not once all 1,000 had started.
            assert 0 < updates[0].tasks_running <= 2 * FILL_CHUNK
            await trio.sleep(1)
            assert updates[-1].tasks_running == 1_000
            assert len(updates) <= 5
            gate.set()
        nursery.cancel_scope.cancel()
