"""The broadcaster and metrics fed by the real executor (mock clock)."""

from __future__ import annotations

import functools
from collections import Counter

import pytest
import trio
import trio.testing
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from broadcaster import RuncastMetrics, render_metrics, serve_broadcaster
from events import Published, Publisher, SessionUpdate
from executor import TaskCancelledError, TaskContext, open_executor


async def agent(ctx: TaskContext, seconds: float, tokens: int, attempts: Counter[str]) -> str:
    """Sleeps, records usage, sleeps; a task id ending in ``!`` fails its first attempt."""
    attempts[ctx.task_id] += 1
    await trio.sleep(seconds / 2)
    ctx.record_usage(
        model="local-model", input_tokens=tokens, output_tokens=tokens // 2, cost_usd=0.01
    )
    await trio.sleep(seconds / 2)
    if ctx.task_id.endswith("!") and attempts[ctx.task_id] == 1:
        raise RuntimeError("flaky")
    return ctx.task_id


async def test_aggregate_and_metrics_match_the_executor(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    publisher = Publisher()
    registry = CollectorRegistry()
    metrics = RuncastMetrics(registry, publisher)
    running_seen: list[int] = []
    attempts: Counter[str] = Counter()

    def watch(item: Published) -> None:
        if isinstance(item.event, SessionUpdate):
            running_seen.append(item.event.tasks_running)

    publisher.add_listener(watch)
    broadcaster = await nursery.start(
        functools.partial(serve_broadcaster, publisher, metrics=metrics, interval=5)
    )
    async with open_executor(publisher, concurrency=3, retry_backoff=1.0) as executor:
        handles = [
            executor.submit(agent, 4.0 + i, 100 * (i + 1), attempts, task_id=f"job-{i}")
            for i in range(7)
        ]
        failing = executor.submit(agent, 1.0, 10, attempts, task_id="flaky!", retries=1)
        doomed = executor.submit(agent, 100.0, 1, attempts, task_id="doomed")
        await trio.sleep(6)
        assert broadcaster.snapshot().tasks_running == 3
        executor.cancel("doomed")
        await executor.join()
        spent = executor.spent_usd
        infos = executor.tasks()
    assert [await h.wait() for h in handles] == [f"job-{i}" for i in range(7)]
    assert await failing.wait() == "flaky!"
    with pytest.raises(TaskCancelledError):
        await doomed.wait()

    snapshot = broadcaster.snapshot()
    states = Counter(info.state for info in infos)
    assert (snapshot.tasks_running, snapshot.tasks_queued) == (0, 0)
    assert snapshot.tasks_completed == states["completed"] == 8
    assert snapshot.tasks_cancelled == states["cancelled"] == 1
    assert snapshot.input_tokens == sum(info.input_tokens for info in infos)
    assert snapshot.estimated_cost_usd == pytest.approx(spent)
    assert max(running_seen, default=99) <= 3
    assert running_seen[-1] == 0

    body, _ = render_metrics(registry, None)
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    [running] = families["runcast_tasks_running"].samples
    assert running.value == 0
    completed = [
        s.value for s in families["runcast_tasks"].samples if s.labels["status"] == "completed"
    ]
    assert completed == [8]
