"""WebSocket commands and /api/tasks against the real executor, over loopback."""

from __future__ import annotations

from typing import Any

import trio
from _api_support import http_get, receive_json, request, send_json, served_with_executor, ws_client

from executor import TaskContext

TIMEOUT = 10


async def wait_forever(ctx: TaskContext) -> None:
    await trio.sleep_forever()


async def spend(ctx: TaskContext, usd: float) -> None:
    ctx.record_usage(model="m", input_tokens=1000, output_tokens=10, cost_usd=usd)
    await trio.sleep_forever()


async def _event(ws: Any, name: str) -> dict[str, Any]:
    while (frame := await receive_json(ws)).get("event") != name:
        pass
    return frame


async def test_cancel_a_running_task_and_an_unknown_one() -> None:
    with trio.fail_after(TIMEOUT):
        async with served_with_executor() as stack, ws_client(stack.server.port) as ws:
            stack.executor.submit(wait_forever, task_id="sleeper")
            # since=0 replays the task_started that may already have happened.
            await request(ws, {"type": "subscribe", "task_id": "sleeper", "since": 0})
            await _event(ws, "task_started")
            result = await request(
                ws, {"type": "command", "action": "cancel", "task_id": "sleeper"}
            )
            cancelled = await _event(ws, "task_cancelled")
            again = await request(ws, {"type": "command", "action": "cancel", "task_id": "sleeper"})
            unknown = await request(ws, {"type": "command", "action": "cancel", "task_id": "nope"})
            tasks = (await http_get(stack.server.port, "/api/tasks")).json()["tasks"]
    assert result["status"] == "cancelled"
    assert cancelled["data"]["was_running"] is True
    assert again["status"] == "already_ended"
    assert unknown["type"] == "error"
    assert "no task with id 'nope'" in unknown["error"]
    assert tasks[0]["task_id"] == "sleeper"
    assert tasks[0]["state"] == "cancelled"
    assert tasks[0]["started_at"].endswith("Z")
    assert tasks[0]["ended_at"].endswith("Z")


async def test_budget_pause_resume_refused_then_raised() -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            served_with_executor(budget_usd=0.01) as stack,
            ws_client(stack.server.port) as ws,
        ):
            await request(ws, {"type": "subscribe", "task_id": "*"})
            stack.executor.submit(spend, 0.02, task_id="spender")
            exhausted = await _event(ws, "budget_exhausted")
            paused = await _event(ws, "executor_paused")
            refused = await request(ws, {"type": "command", "action": "resume"})
            raised = await request(
                ws, {"type": "command", "action": "set_budget", "data": {"budget_usd": 1}}
            )
            await send_json(ws, {"type": "command", "action": "resume", "task_id": "*"})
            resumed = await _event(ws, "executor_resumed")
            assert not stack.executor.is_paused
    assert exhausted["data"]["spent_usd"] == 0.02
    assert paused["data"]["by"] == "budget"
    assert refused["type"] == "error"
    assert "raise the budget first" in refused["error"]
    assert raised["status"] == "budget_set"
    assert resumed["data"]["by"] == "operator"
