"""A task's context and handle reach the executor only through the ``TaskHost`` protocol.

A host here is a plain test double: what the context and the handle do with it
is all they can do, so they need nothing of the executor's own classes.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from events import Event, TaskOutput, TaskUsage
from executor import ExecutorError, TaskContext, TaskHandle
from executor._host import TaskHost
from executor._lifecycle import TaskLifecycle
from executor._record import TaskRecord
from executor._spending import Spending
from executor.pricing import Budget, CostCalculator, PriceTable


class RecordingHost:
    """A ``TaskHost`` that records what is asked of it."""

    def __init__(self) -> None:
        self.output_lines_truncated = 0
        self.usage_records_refused = 0
        self.names_cut = 0
        self.paused = False
        self.unpaused = trio.Event()
        self.published: list[Event] = []
        self.groups: list[tuple[str, int]] = []
        self.cancelled: list[tuple[str, str]] = []

    @property
    def is_paused(self) -> bool:
        return self.paused

    def publish(self, event: Event) -> None:
        self.published.append(event)

    async def wait_unpaused(self) -> None:
        await self.unpaused.wait()

    def add_process_group(self, record: TaskRecord, pgid: int) -> None:
        self.groups.append((record.task_id, pgid))

    def remove_process_group(self, record: TaskRecord, pgid: int) -> None:
        self.groups.remove((record.task_id, pgid))

    def cancel(self, task_id: str, *, reason: str) -> bool:
        self.cancelled.append((task_id, reason))
        return True


def _record() -> TaskRecord:
    return TaskRecord(
        task_id="t1", name="one", fn=None, args=(), timeout=None, retries=0, priority=0, order=0
    )


def _context(host: TaskHost, record: TaskRecord) -> TaskContext:
    prices = PriceTable({})
    spending = Spending(host.publish, lambda **_: None, CostCalculator(prices), Budget())
    return TaskContext(host, spending, record, 1)


def test_a_context_publishes_counts_and_reports_groups_through_its_host() -> None:
    host = RecordingHost()
    record = _record()
    ctx = _context(host, record)

    ctx.output("a\nb", stream="stderr")
    ctx.record_usage(model="m" * 300, input_tokens=3, cost_usd=0.5)
    ctx.refuse_usage("too big")
    ctx.add_process_group(42)
    ctx.end_attempt()

    output, usage = host.published
    assert isinstance(output, TaskOutput)
    assert (output.line, output.stream, output.lines) == ("a\nb", "stderr", 2)
    assert isinstance(usage, TaskUsage)
    assert (usage.input_tokens, usage.cost_usd, usage.cost_source) == (3, 0.5, "reported")
    assert (record.tokens.input, record.cost_usd) == (3, 0.5)
    assert (host.names_cut, host.usage_records_refused) == (1, 1)
    assert host.groups == [("t1", 42)]
    ctx.remove_process_group(42)
    assert host.groups == []
    with pytest.raises(ExecutorError, match="after the attempt ended"):
        ctx.record_usage(model="m", input_tokens=1)


async def test_a_context_waits_while_its_host_is_paused() -> None:
    host = RecordingHost()
    ctx = _context(host, _record())
    host.paused = True
    passed = trio.Event()

    async def task() -> None:
        await ctx.wait_if_paused()
        passed.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(task)
        await trio.testing.wait_all_tasks_blocked()
        assert not passed.is_set()
        host.paused = False
        host.unpaused.set()
        await passed.wait()


def test_a_handle_cancels_through_its_host() -> None:
    host = RecordingHost()
    handle = TaskHandle(host, _record())

    assert handle.cancel("not needed") is True
    assert host.cancelled == [("t1", "not needed")]


def _lifecycle_is_a_task_host(lifecycle: TaskLifecycle) -> TaskHost:
    # Checked by mypy: the executor's lifecycle implements the protocol.
    return lifecycle
