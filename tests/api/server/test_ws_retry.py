"""The ``retry`` WebSocket command against the real executor: runs an ended task again."""

from __future__ import annotations

from typing import Any

import trio
from _api_support import http_get, receive_json, request, served_with_executor, ws_client

from api.server import ServerConfig
from executor import TaskContext

TIMEOUT = 10
TOKENS = ServerConfig(port=0, auth_tokens=("op-secret",), viewer_tokens=("view-secret",))


async def fails_first(ctx: TaskContext, calls: list[int]) -> str:
    calls.append(1)
    if len(calls) == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


async def wait_forever(ctx: TaskContext) -> None:
    await trio.sleep_forever()


async def _event(ws: Any, name: str) -> dict[str, Any]:
    while (frame := await receive_json(ws)).get("event") != name:
        pass
    return frame


async def _session_update(ws: Any, **wanted: object) -> dict[str, Any]:
    while True:
        frame = await _event(ws, "session_update")
        if all(frame["data"][key] == value for key, value in wanted.items()):
            return frame


async def test_retry_a_failed_task_runs_its_next_attempt_and_updates_the_counts() -> None:
    with trio.fail_after(TIMEOUT):
        async with served_with_executor() as stack, ws_client(stack.server.port) as ws:
            await request(ws, {"type": "subscribe", "task_id": "*"})
            stack.executor.submit(fails_first, [], task_id="flaky")
            await _session_update(ws, tasks_failed=1)
            reply = await request(ws, {"type": "command", "action": "retry", "task_id": "flaky"})
            queued = await _event(ws, "task_queued")
            completed = await _event(ws, "task_completed")
            update = await _session_update(ws, tasks_completed=1)
            tasks = (await http_get(stack.server.port, "/api/tasks")).json()["tasks"]
    assert reply == {
        "type": "command_result",
        "action": "retry",
        "status": "queued",
        "task_id": "flaky",
    }
    assert queued["data"]["attempt"] == 2
    assert completed["data"]["attempt"] == 2
    assert update["data"]["tasks_failed"] == 0
    assert [(t["task_id"], t["state"], t["attempts"]) for t in tasks] == [("flaky", "completed", 2)]


async def test_retry_refuses_running_unknown_and_whole_session_ids_changing_nothing() -> None:
    with trio.fail_after(TIMEOUT):
        async with served_with_executor() as stack, ws_client(stack.server.port) as ws:
            stack.executor.submit(wait_forever, task_id="sleeper")
            await request(ws, {"type": "subscribe", "task_id": "sleeper", "since": 0})
            await _event(ws, "task_started")
            running = await request(
                ws, {"type": "command", "action": "retry", "task_id": "sleeper"}
            )
            unknown = await request(ws, {"type": "command", "action": "retry", "task_id": "nope"})
            star = await request(ws, {"type": "command", "action": "retry", "task_id": "*"})
            missing = await request(ws, {"type": "command", "action": "retry"})
            info = stack.executor.task("sleeper")
    assert running["type"] == "error"
    assert running["error"] == (
        "task 'sleeper' is running: only a failed, timed-out or cancelled task can be retried"
    )
    assert (running["action"], running["task_id"]) == ("retry", "sleeper")
    assert unknown["type"] == "error"
    assert "no task with id 'nope'" in unknown["error"]
    assert star["error"] == "task_id: retry needs one task's id, not '*'"
    assert missing["error"].startswith("task_id: missing")
    assert (info.state, info.attempts) == ("running", 1)


async def test_a_viewer_may_not_retry() -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            served_with_executor(TOKENS) as stack,
            ws_client(stack.server.port, "/ws?token=view-secret") as ws,
        ):
            stack.executor.submit(fails_first, [], task_id="flaky")
            await request(ws, {"type": "subscribe", "task_id": "flaky", "since": 0})
            await _event(ws, "task_failed")
            refused = await request(ws, {"type": "command", "action": "retry", "task_id": "flaky"})
            info = stack.executor.task("flaky")
    assert refused["type"] == "error"
    assert "forbidden" in refused["error"]
    assert (info.state, info.attempts) == ("failed", 1)
