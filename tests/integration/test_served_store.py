"""The served stack (real loopback server) recording into a store, and failing to."""

from __future__ import annotations

import pytest
import trio

from api import ServerConfig, StackSettings, open_stack
from api.store._exceptions import StoreError
from api.store._store import SessionStore
from events import ExecutorPaused, Published
from executor import TaskContext

pytestmark = pytest.mark.integration


def _settings(session_id: str) -> StackSettings:
    return StackSettings(server=ServerConfig(host="127.0.0.1", port=0), session_id=session_id)


async def spend(ctx: TaskContext) -> None:
    ctx.record_usage(model="house", input_tokens=10, cost_usd=0.1)
    await trio.sleep(0.05)


async def test_store_failure_pauses_with_a_reason_and_fails_the_run() -> None:
    store = SessionStore.open(":memory:")
    store.begin_session("s")
    store.conn.execute("DROP TABLE usage")  # the disk "fails" for usage rows
    seen: list[Published] = []
    with (
        trio.fail_after(30),
        pytest.RaisesGroup(
            pytest.RaisesExc(StoreError, match="no such table: usage"), flatten_subgroups=True
        ),
    ):
        async with open_stack(_settings("s"), store=store) as stack:
            stack.publisher.add_listener(seen.append)
            stack.executor.submit(spend, task_id="t")
            await trio.sleep_forever()
    paused = [item.event for item in seen if isinstance(item.event, ExecutorPaused)]
    assert paused
    assert paused[0].by == "system"
    assert paused[0].reason.startswith("store failed: writing to store")


async def test_store_records_the_served_run() -> None:
    store = SessionStore.open(":memory:")
    store.begin_session("s")
    with trio.fail_after(30):
        async with open_stack(_settings("s"), store=store) as stack:
            stack.executor.submit(spend, task_id="t")
    assert store.usage_totals("s").input_tokens == 10
    assert [task.state for task in store.tasks("s")] == ["completed"]
    assert store.session("s").tasks_completed == 1
