"""Each task runs in its submitter's context variables, whatever starts it."""

from __future__ import annotations

import contextvars

import trio

from events import Publisher
from executor import TaskContext, open_executor

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def binds_and_reports(ctx: TaskContext, value: str, seen: list[tuple[str, str]]) -> None:
    seen.append((ctx.task_id, request_id.get()))
    request_id.set(value)  # a task binding its own values, as structlog's bind_contextvars does
    await trio.sleep(1)


async def test_a_task_started_by_anothers_end_runs_in_its_submitters_context(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tuple[str, str]] = []
    async with open_executor(Publisher(), concurrency=1) as executor:
        executor.submit(binds_and_reports, "from-a", seen, task_id="a")
        token = request_id.set("submitter-b")
        executor.submit(binds_and_reports, "from-b", seen, task_id="b")
        request_id.reset(token)
        executor.submit(binds_and_reports, "from-c", seen, task_id="c")
    # b and c start when the task before them ends, inside that task's step; each
    # still sees what its submitter had, never what the ended task bound.
    assert seen == [("a", "unset"), ("b", "submitter-b"), ("c", "unset")]


async def test_a_retry_runs_in_the_submitters_context_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[str] = []

    async def fails_once(ctx: TaskContext) -> None:
        seen.append(request_id.get())
        request_id.set("bound by the attempt")
        if len(seen) == 1:
            raise RuntimeError("first attempt fails")

    async with open_executor(Publisher(), concurrency=2, retry_backoff=0.5) as executor:
        token = request_id.set("submitter")
        executor.submit(fails_once, retries=1)
        request_id.reset(token)
    assert seen == ["submitter", "submitter"]
