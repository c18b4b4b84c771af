"""``Executor.task_page``: ``tasks()`` a page at a time, at a cost in the page's size.

``/api/tasks`` lists from it (issue 17, item 7): ``tasks()`` builds a snapshot of
every task, 20,000 of them in ~50 ms on the event loop, for each reader.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from events import Publisher
from executor import Executor, InvalidArgumentError, TaskContext, TaskInfo, open_executor
from executor._record import TaskRecord


async def noop(ctx: TaskContext) -> None:
    pass


async def held(ctx: TaskContext, gate: trio.Event) -> None:
    await gate.wait()


def all_pages(executor: Executor, limit: int, states: set[str] | None = None) -> list[TaskInfo]:
    rows: list[TaskInfo] = []
    after: int | None = None
    while True:
        page = executor.task_page(after=after, limit=limit, states=states)
        assert len(page.tasks) <= limit
        rows.extend(page.tasks)
        if page.next_after is None:
            return rows
        assert len(page.tasks) == limit
        after = page.next_after


async def test_a_page_builds_only_its_own_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    built = 0
    info = TaskRecord.info

    def counting(record: TaskRecord) -> TaskInfo:
        nonlocal built
        built += 1
        return info(record)

    async with open_executor(Publisher(), start_paused=True) as executor:
        for index in range(20_000):
            executor.submit(noop, task_id=f"t{index}")
        monkeypatch.setattr(TaskRecord, "info", counting)
        first = executor.task_page(limit=100)
        last = executor.task_page(after=19_949, limit=100)
        assert built == 150
        assert [t.task_id for t in first.tasks] == [f"t{i}" for i in range(100)]
        assert first.next_after == 99
        assert [t.task_id for t in last.tasks] == [f"t{i}" for i in range(19_950, 20_000)]
        assert last.next_after is None
        executor.cancel_all()


async def test_pages_list_live_and_finished_tasks_once_in_submission_order() -> None:
    gate = trio.Event()
    async with open_executor(Publisher(), concurrency=40) as executor:
        for index in range(30):
            if index % 2:
                executor.submit(held, gate, task_id=f"t{index}")
            else:
                executor.submit(noop, task_id=f"t{index}")
        await trio.testing.wait_all_tasks_blocked()
        every = [t.task_id for t in executor.tasks()]
        assert [t.task_id for t in all_pages(executor, 7)] == every
        assert len(every) == 30
        completed = all_pages(executor, 4, {"completed"})
        assert [t.task_id for t in completed] == [f"t{i}" for i in range(0, 30, 2)]
        running = all_pages(executor, 100, {"running", "queued"})
        assert [t.task_id for t in running] == [f"t{i}" for i in range(1, 30, 2)]
        assert all_pages(executor, 5, {"failed"}) == []
        gate.set()


async def test_tasks_ending_between_pages_are_neither_repeated_nor_skipped() -> None:
    async with open_executor(Publisher(), concurrency=30, start_paused=True) as executor:
        for index in range(30):
            executor.submit(noop, task_id=f"t{index}")
        first = executor.task_page(limit=10)
        assert {t.state for t in first.tasks} == {"queued"}
        executor.resume()
        await trio.testing.wait_all_tasks_blocked()  # all ended: live -> finished
        rest = executor.task_page(after=first.next_after, limit=100)
        seen = [t.task_id for t in (*first.tasks, *rest.tasks)]
        assert seen == [f"t{i}" for i in range(30)]
        assert {t.state for t in rest.tasks} == {"completed"}


async def test_forgotten_finished_tasks_are_skipped() -> None:
    async with open_executor(Publisher(), keep_finished=3) as executor:
        for index in range(10):
            await executor.submit(noop, task_id=f"t{index}").wait()
        page = executor.task_page(after=2, limit=2)
        assert [t.task_id for t in page.tasks] == ["t7", "t8"]
        assert page.next_after == 8


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"limit": 0}, "limit must be an int >= 1, got 0"),
        ({"limit": True}, "limit must be an int >= 1, got True"),
        ({"limit": "5"}, "limit must be an int >= 1, got '5'"),
        ({"limit": 5, "after": "3"}, "after must be an int or None, got '3'"),
    ],
)
async def test_bad_page_arguments_are_named(kwargs: dict[str, object], complaint: str) -> None:
    async with open_executor(Publisher()) as executor:
        with pytest.raises(InvalidArgumentError, match=complaint):
            executor.task_page(**kwargs)  # type: ignore[arg-type]
