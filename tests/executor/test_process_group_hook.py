"""``open_executor(on_process_group=...)``: told of each process group as it starts and ends.

Groups here are made-up numbers reported by coroutine tasks, as a command's
code reports its real one (tests/integration/test_command_group_hook.py runs
real commands).
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from events import Publisher
from executor import InvalidArgumentError, TaskContext, open_executor


async def _runs_in_groups(ctx: TaskContext, *pgids: int) -> None:
    for pgid in pgids:
        ctx.add_process_group(pgid)
    await trio.sleep(1)
    for pgid in pgids:
        ctx.remove_process_group(pgid)


async def test_the_hook_hears_each_group_start_and_end_with_its_task(
    publisher: Publisher, autojump_clock: trio.testing.MockClock
) -> None:
    heard: list[tuple[str, int, bool]] = []

    def hook(task_id: str, pgid: int, started: bool) -> None:
        heard.append((task_id, pgid, started))

    async with open_executor(publisher, on_process_group=hook) as executor:
        executor.submit(_runs_in_groups, 7, 8, task_id="a")
        executor.submit(_runs_in_groups, 9, task_id="b")
        await trio.testing.wait_all_tasks_blocked()
        # (Trio runs the two tasks in either order.)
        assert sorted(heard) == [("a", 7, True), ("a", 8, True), ("b", 9, True)]
        assert executor.task("a").state == "running"
    assert sorted(heard[3:]) == [("a", 7, False), ("a", 8, False), ("b", 9, False)]


async def test_without_a_hook_groups_are_kept_as_before(
    publisher: Publisher, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_executor(publisher) as executor:
        handle = executor.submit(_runs_in_groups, 7, task_id="a")
    assert (await handle.wait()) is None


async def test_a_hook_that_is_not_callable_is_refused(publisher: Publisher) -> None:
    with pytest.raises(InvalidArgumentError, match="on_process_group must be callable"):
        async with open_executor(publisher, on_process_group=42):  # type: ignore[arg-type]
            pass
