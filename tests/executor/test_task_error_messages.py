"""Issue 17: a failed task's error names its cause, never ``ExceptionGroup: ...``.

A task that opens a trio nursery (every subprocess task does) gets a single
error back wrapped in an ExceptionGroup; the task failed with "ExceptionGroup:
Exceptions from Trio nursery (1 sub-exception)" and the cause was nowhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from events import Published, Publisher, TaskFailed, TaskRetrying
from executor import CommandFailedError, TaskContext, TaskFailedError, open_executor


async def raise_in_nursery(error: BaseException, depth: int = 1) -> None:
    """Raise ``error`` from a child task, ``depth`` nurseries deep."""

    async def child() -> None:
        await trio.lowlevel.checkpoint()
        raise error

    async with trio.open_nursery() as nursery:
        if depth > 1:
            nursery.start_soon(raise_in_nursery, error, depth - 1)
        else:
            nursery.start_soon(child)


async def raise_two() -> None:
    async def fail(error: Exception) -> None:
        raise error  # at once: a checkpoint first would let the other's error cancel it

    async with trio.open_nursery() as nursery:
        nursery.start_soon(fail, ValueError("a"))
        nursery.start_soon(fail, KeyError("b"))


async def run_failing(
    body: Callable[[], Awaitable[None]], *, retries: int = 0
) -> tuple[list[Published], TaskFailedError]:
    publisher = Publisher()
    items: list[Published] = []
    publisher.add_listener(items.append)

    async def task(ctx: TaskContext) -> None:
        await body()

    async with open_executor(publisher, retry_backoff=0) as executor:
        handle = executor.submit(task, task_id="t", retries=retries)
        try:
            await handle.wait()
        except TaskFailedError as exc:
            failed = exc
        else:
            pytest.fail("the task did not fail")
    return items, failed


@pytest.mark.parametrize("depth", [1, 3])
async def test_a_single_error_in_a_tasks_nursery_is_the_tasks_error(depth: int) -> None:
    boom = ValueError("boom")
    items, failed = await run_failing(lambda: raise_in_nursery(boom, depth))
    [event] = [p.event for p in items if isinstance(p.event, TaskFailed)]
    assert event.error == "ValueError: boom"
    assert failed.__cause__ is boom
    assert "ExceptionGroup" not in str(failed)


async def test_a_retry_names_the_cause_too() -> None:
    items, _ = await run_failing(lambda: raise_in_nursery(RuntimeError("flaky")), retries=1)
    [retrying] = [p.event for p in items if isinstance(p.event, TaskRetrying)]
    assert retrying.error == "RuntimeError: flaky"


async def test_a_command_failure_in_a_nursery_reads_as_the_command_failure() -> None:
    items, _ = await run_failing(lambda: raise_in_nursery(CommandFailedError(3)))
    [event] = [p.event for p in items if isinstance(p.event, TaskFailed)]
    assert event.error == "exit code 3"


async def test_several_errors_are_each_named() -> None:
    items, failed = await run_failing(raise_two)
    [event] = [p.event for p in items if isinstance(p.event, TaskFailed)]
    # In the order the children raised, which trio's scheduler may shuffle.
    assert event.error.startswith("2 errors: ")
    assert sorted(event.error.removeprefix("2 errors: ").split("; ")) == [
        "KeyError: 'b'",
        "ValueError: a",
    ]
    assert isinstance(failed.__cause__, ExceptionGroup)


async def test_a_group_of_many_errors_names_a_few_and_counts_the_rest() -> None:
    async def raise_seven() -> None:
        raise ExceptionGroup("many", [OSError(n) for n in range(7)])

    items, _ = await run_failing(raise_seven)
    [event] = [p.event for p in items if isinstance(p.event, TaskFailed)]
    named = "; ".join(f"OSError: {n}" for n in range(5))
    assert event.error == f"7 errors: {named}; and 2 more"
