"""The demo's simulated workload, on the mock clock, with the real executor."""

from __future__ import annotations

import random
from collections import Counter

import trio
import trio.testing

from api import ServerConfig
from api.cli._demo import MODELS, DemoOptions, simulate
from events import (
    BudgetChanged,
    BudgetExhausted,
    ExecutorResumed,
    Published,
    Publisher,
    TaskUsage,
)
from executor import open_executor


async def test_demo_workload_covers_what_it_promises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = Publisher()
    seen: list[Published] = []
    publisher.add_listener(seen.append)
    options = DemoOptions(server=ServerConfig(), budget_usd=0.05, budget_step_usd=0.05)
    async with open_executor(publisher, concurrency=4, budget_usd=options.budget_usd) as executor:
        with trio.move_on_after(900):
            await simulate(executor, publisher, options, random.Random(5))
        executor.cancel_all(reason="test over")

    names = Counter(item.event_name for item in seen)
    usage = [item.event for item in seen if isinstance(item.event, TaskUsage)]
    assert {u.model for u in usage} == {m.name for m in MODELS}
    assert any(u.cache_read_tokens > 0 for u in usage)
    assert any(u.cost_source == "unpriced" for u in usage)
    assert any(u.cost_source == "computed" for u in usage)
    assert names["task_completed"] >= 20
    assert names["task_failed"] >= 1
    assert names["task_retrying"] >= 1
    # The budget ran out, the demo raised it and resumed, more than once.
    budgets = [
        item.event.budget_usd or 0.0
        for item in seen
        if isinstance(item.event, BudgetChanged) and item.event.by == "operator"
    ]
    assert len(budgets) >= 2
    assert budgets == sorted(budgets)
    assert sum(isinstance(item.event, BudgetExhausted) for item in seen) >= 2
    assert any(
        isinstance(item.event, ExecutorResumed) and item.event.by == "operator" for item in seen
    )
    # Bounded queue: the filler never piles up more than queue_depth waiting tasks.
    assert names["task_queued"] <= names["task_started"] + options.queue_depth + 4


async def test_demo_keeps_the_queue_at_depth(autojump_clock: trio.testing.MockClock) -> None:
    publisher = Publisher()
    options = DemoOptions(server=ServerConfig(), queue_depth=3)
    async with open_executor(publisher, concurrency=1, start_paused=True) as executor:
        with trio.move_on_after(30):
            await simulate(executor, publisher, options, random.Random(1))
        states = Counter(task.state for task in executor.tasks())
        executor.cancel_all(reason="test over")
    assert states == {"queued": 3}
