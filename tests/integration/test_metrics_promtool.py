"""``promtool check metrics`` accepts our exposition (Prometheus' own linter)."""

from __future__ import annotations

import shutil

import pytest
import trio
from prometheus_client import CollectorRegistry

from broadcaster import RuncastMetrics, SessionBroadcaster, render_metrics
from events import (
    BudgetChanged,
    ExecutorPaused,
    Publisher,
    TaskCompleted,
    TaskFailed,
    TaskQueued,
    TaskRetrying,
    TaskStarted,
    TaskUsage,
)

PROMTOOL = shutil.which("promtool")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        PROMTOOL is None, reason="promtool is not installed (Debian package 'prometheus')"
    ),
]


async def test_promtool_accepts_the_exposition() -> None:
    assert PROMTOOL is not None
    publisher = Publisher()
    registry = CollectorRegistry()
    metrics = RuncastMetrics(registry, publisher)
    broadcaster = SessionBroadcaster(publisher, metrics=metrics)
    publisher.add_listener(broadcaster.on_event)
    broadcaster.subscribe_session()
    publisher.publish(BudgetChanged(budget_usd=3.0))
    for task_id in ("a", "b", "c"):
        publisher.publish(TaskQueued(task_id=task_id))
        publisher.publish(TaskStarted(task_id=task_id))
    publisher.publish(
        TaskUsage(task_id="a", model="gpt-4o", provider="openai", input_tokens=10, cost_usd=0.1)
    )
    publisher.publish(TaskUsage(task_id="b", model="local", output_tokens=5))
    publisher.publish(TaskCompleted(task_id="a", duration_seconds=12.5))
    publisher.publish(TaskFailed(task_id="b", duration_seconds=0.2, error="exit 1"))
    publisher.publish(TaskRetrying(task_id="c", attempt=1, error="timed out after 1s"))
    publisher.publish(TaskQueued(task_id="c", attempt=2))
    publisher.publish(TaskStarted(task_id="c", attempt=2))
    publisher.publish(TaskFailed(task_id="c", attempt=2, timed_out=True, error="timed out"))
    publisher.publish(ExecutorPaused())
    metrics.websocket_connections.inc()
    body, content_type = render_metrics(registry, None)
    assert content_type.startswith("text/plain")
    assert b"runcast_budget_remaining_usd 2.9" in body
    text = body.decode()
    for sample in (
        'runcast_tokens_total{kind="input",model="gpt-4o",provider="openai"} 10.0',
        "runcast_task_retries_total 1.0",
        "runcast_task_timeouts_total 1.0",
        'runcast_task_queue_wait_seconds_bucket{le="+Inf"} 4.0',
        "runcast_task_queue_wait_untracked_total 0.0",
        "runcast_session_start_time_seconds ",
        "process_resident_memory_bytes ",
    ):
        assert sample in text, sample

    with trio.fail_after(30):
        result = await trio.run_process(
            [PROMTOOL, "check", "metrics"],
            stdin=body,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, output
    assert output.strip() == "", output  # no lint warnings either
