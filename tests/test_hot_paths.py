"""Behaviour kept by the per-task fast paths (bench §2): lazy end events, listener tuples."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from events import Published, Publisher, TaskOutput
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
