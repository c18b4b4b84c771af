"""``runcast run``'s summary lists every task, also those the executor let go of."""

from __future__ import annotations

import trio
import trio.lowlevel

from api import ServerConfig, StackSettings, open_stack
from api.cli._run import summary_tasks
from api.cli._summary import format_summary
from api.store._store import SessionStore
from executor import TaskContext


async def burn(ctx: TaskContext, tokens: int) -> None:
    ctx.record_usage(model="m", input_tokens=tokens, output_tokens=1, cost_usd=tokens / 1000)
    await trio.lowlevel.checkpoint()
    if tokens == 300:
        raise RuntimeError("third one fails")


async def run_five(keep_finished: int) -> tuple[list[str], list[tuple[str, str, int, float]]]:
    store = SessionStore.open(":memory:")
    try:
        store.begin_session("s")
        settings = StackSettings(
            server=ServerConfig(host="127.0.0.1", port=0),
            session_id="s",
            keep_finished=keep_finished,
        )
        async with open_stack(settings, store=store) as stack:
            for index in range(1, 6):
                stack.executor.submit(burn, index * 100, task_id=f"t{index}")
        evicted = stack.executor.finished_evicted
        assert evicted == max(0, 5 - keep_finished)
        tasks = summary_tasks(stack.executor, store, "s")
        text = format_summary(tasks, stack.broadcaster.snapshot())
    finally:
        store.close()
    for task in tasks:
        assert task.started_at is not None
        assert task.ended_at is not None
        assert task.started_at <= task.ended_at
        assert task.error == ("RuntimeError: third one fails" if task.task_id == "t3" else None)
    rows: list[tuple[str, str, int, float]] = [
        (t.task_id, t.state, t.input_tokens, t.estimated_cost_usd) for t in tasks
    ]
    return text.splitlines(), rows


async def test_the_summary_takes_forgotten_tasks_from_the_store() -> None:
    expected = [
        (f"t{i}", "failed" if i == 3 else "completed", i * 100, i / 10) for i in range(1, 6)
    ]
    lines_all, rows_all = await run_five(keep_finished=10)
    lines_few, rows_few = await run_five(keep_finished=2)
    assert rows_all == expected
    assert rows_few == expected
    # Same table either way, but for the times (and the session id line).
    assert [line.split()[:2] for line in lines_few[1:6]] == [
        line.split()[:2] for line in lines_all[1:6]
    ]
    assert lines_few[7:9] == lines_all[7:9]
    assert lines_few[7] == "5 tasks: 4 completed, 1 failed, 0 cancelled"
