"""A finished task is kept as a row of named final values, read back as its last snapshot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events import Publisher
from executor import TaskContext, TaskFailedError, TokenCounts, open_executor
from executor._record import FinishedRow, TaskRecord


async def noop(ctx: TaskContext) -> None:
    return None


def test_a_finished_row_reads_as_the_records_last_snapshot() -> None:
    # Every field a different value, so a value read from the wrong field shows.
    record = TaskRecord(
        task_id="t7",
        name="seven",
        fn=noop,
        args=(1, 2),
        timeout=9.0,
        retries=4,
        priority=5,
        order=11,
        model="m",
        provider="p",
        state="failed",
        attempts=3,
        started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        ended_at=datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC),
        tokens=TokenCounts(1, 2, 3, 4),
        cost_usd=0.25,
        unpriced_tokens=9,
        error="boom",
        exit_code=2,
    )
    before = record.info()

    row = record.retire()

    assert isinstance(row, FinishedRow)
    assert row.info() == before
    assert (row.order, row.state, row.priority, row.exit_code) == (11, "failed", 5, 2)
    assert (record.fn, record.args, record.scope, record.context) == (None, (), None, None)


async def test_a_finished_task_is_listed_and_paged_from_its_row() -> None:
    async def fails(ctx: TaskContext) -> None:
        ctx.record_usage(model="m", input_tokens=7, cost_usd=0.5)
        ctx.set_exit_code(3)
        raise ValueError("no")

    async with open_executor(Publisher()) as executor:
        executor.submit(noop, task_id="ok", priority=2)
        failing = executor.submit(fails, task_id="bad")
        with pytest.raises(TaskFailedError):
            await failing.wait()
        await executor.join()

        bad = executor.task("bad")
        page = executor.task_page(limit=10, states=["failed"])

    assert (bad.state, bad.input_tokens, bad.estimated_cost_usd) == ("failed", 7, 0.5)
    assert (bad.exit_code, bad.error) == (3, "ValueError: no")
    assert [info.task_id for info in page.tasks] == ["bad"]
    assert [info.priority for info in executor.tasks()] == [2, 0]
