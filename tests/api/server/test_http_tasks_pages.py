"""``GET /api/tasks`` a page at a time: ``limit``, ``after``, ``state`` (issue 17, item 7).

With 20,000 tasks one answer was 5.1 MB built on the event loop in 0.27 s; now a
page holds at most ``MAX_PAGE`` rows, built by the executor alone and encoded a
chunk per loop step.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import pytest
import trio
import trio.testing
from _api_support import FakeExecutor, FakeTask, http_get, served, served_with_executor

from api.clients._connection import fetch_tasks
from api.server._routes import DEFAULT_PAGE, MAX_PAGE, PAGE_CHUNK, page_body
from events import TASK_STATES, Publisher
from executor import TaskContext, TaskState

TIMEOUT = 10


async def _tasks(port: int, query: str = "") -> Any:
    reply = await http_get(port, f"/api/tasks{query}")
    assert reply.status == 200, reply.body
    return reply.json()


async def test_pages_follow_the_next_cursor() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            stack.executor.rows.extend(FakeTask(task_id=f"t{n}") for n in range(2, 6))
            first = await _tasks(stack.port, "?limit=2")
            second = await _tasks(stack.port, f"?limit=2&after={first['next']}")
            third = await _tasks(stack.port, f"?limit=2&after={second['next']}")
    assert [t["task_id"] for t in first["tasks"]] == ["t1", "t2"]
    assert [t["task_id"] for t in second["tasks"]] == ["t3", "t4"]
    assert third == {"tasks": [third["tasks"][0]], "next": None}
    assert third["tasks"][0]["task_id"] == "t5"
    assert isinstance(first["next"], str)


async def test_without_limit_a_page_holds_the_default_number_of_rows() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            stack.executor.rows.extend(FakeTask(task_id=f"t{n}") for n in range(2, 1_202))
            page = await _tasks(stack.port)
            biggest = await _tasks(stack.port, f"?limit={MAX_PAGE}")
    assert len(page["tasks"]) == DEFAULT_PAGE
    assert page["next"] is not None
    assert len(biggest["tasks"]) == MAX_PAGE


async def test_state_filter() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            stack.executor.rows.extend(
                [FakeTask(task_id="t2", state="failed"), FakeTask(task_id="t3", state="running")]
            )
            failed = await _tasks(stack.port, "?state=failed")
            two = await _tasks(stack.port, "?state=running,queued")
    assert [t["task_id"] for t in failed["tasks"]] == ["t2"]
    assert [t["task_id"] for t in two["tasks"]] == ["t1", "t3"]


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        ("limit=0", "limit: expected an integer from 1 to 1000, got '0'"),
        ("limit=1001", "limit: expected an integer from 1 to 1000, got '1001'"),
        ("limit=-5", "limit: expected an integer from 1 to 1000, got '-5'"),
        ("limit=ten", "limit: expected an integer from 1 to 1000, got 'ten'"),
        ("limit=" + "9" * 5000, "limit: expected an integer from 1 to 1000, got '99999"),
        ("after=-1", "after: expected the 'next' value of a previous page, got '-1'"),
        ("after=abc", "after: expected the 'next' value of a previous page, got 'abc'"),
        ("after=" + "1" * 20, "after: expected the 'next' value of a previous page"),
        ("state=done", "state: unknown state 'done' (expected one or more of queued, running"),
        ("state=running,bogus", "state: unknown state 'bogus'"),
    ],
)
async def test_bad_page_parameters_are_400_saying_which(query: str, complaint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            reply = await http_get(stack.port, f"/api/tasks?{query}")
            alive = await http_get(stack.port, "/healthz")
    assert reply.status == 400
    assert complaint in reply.body.decode()
    assert alive.status == 200


def test_the_states_are_the_executors() -> None:
    assert typing.get_args(TaskState) == TASK_STATES


# -- the real executor ---------------------------------------------------------------------
async def noop(ctx: TaskContext) -> None:
    pass


async def test_every_task_of_a_big_run_once_page_after_page() -> None:
    with trio.fail_after(TIMEOUT):
        async with served_with_executor(start_paused=True) as stack:
            for index in range(2_500):
                stack.executor.submit(noop, task_id=f"t{index}", name=f"cmd --n {index}")
            pages = [await _tasks(stack.server.port, "?limit=1000")]
            while pages[-1]["next"] is not None:
                pages.append(
                    await _tasks(stack.server.port, f"?limit=1000&after={pages[-1]['next']}")
                )
            rows = await fetch_tasks(f"ws://127.0.0.1:{stack.server.port}/ws", None)
    assert [len(page["tasks"]) for page in pages] == [1000, 1000, 500]
    ids = [row["task_id"] for page in pages for row in page["tasks"]]
    assert ids == [f"t{i}" for i in range(2_500)]
    assert pages[0]["tasks"][3]["name"] == "cmd --n 3"
    # The terminal clients' loader follows the pages too.
    assert [row["task_id"] for row in rows] == ids


class _StepCounter(trio.abc.Instrument):
    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1


async def test_a_page_is_built_a_chunk_per_loop_step() -> None:
    executor = FakeExecutor(Publisher(), rows=[FakeTask(task_id=f"t{n}") for n in range(1_500)])
    result: dict[str, bytes] = {}

    async def build() -> None:
        result["body"] = await page_body(executor, after=None, limit=MAX_PAGE, states=None)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(build)
        (task,) = nursery.child_tasks
        counter = _StepCounter(task)
        trio.lowlevel.add_instrument(counter)
        try:
            await trio.testing.wait_all_tasks_blocked()
        finally:
            trio.lowlevel.remove_instrument(counter)
    assert counter.steps >= MAX_PAGE // PAGE_CHUNK
    assert executor.page_calls == [(None, PAGE_CHUNK)] + [
        (n * PAGE_CHUNK - 1, PAGE_CHUNK) for n in range(1, MAX_PAGE // PAGE_CHUNK)
    ]
    decoded = json.loads(result["body"])
    assert [row["task_id"] for row in decoded["tasks"]] == [f"t{n}" for n in range(MAX_PAGE)]
    assert decoded["next"] == str(MAX_PAGE - 1)


async def test_pages_are_built_one_at_a_time() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            stack.executor.rows.extend(FakeTask(task_id=f"t{n}") for n in range(2, 1_001))
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(_tasks, stack.port, "?limit=1000")
    calls = [after for after, _ in stack.executor.page_calls]
    one_page = [None, *range(PAGE_CHUNK - 1, 1_000 - 1, PAGE_CHUNK)]
    assert calls == one_page * 3  # never two pages' chunks interleaved
