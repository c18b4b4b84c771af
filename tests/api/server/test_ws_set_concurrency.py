"""The ``set_concurrency`` WebSocket command against the real executor."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from _api_support import receive_json, request, send_json, served_with_executor, ws_client

import executor
from api.cli import _client_commands as client_commands
from api.server import ServerConfig
from api.server._messages import MAX_CONCURRENCY
from executor import TaskContext

TIMEOUT = 10
TOKENS = ServerConfig(port=0, auth_tokens=("op-secret",), viewer_tokens=("view-secret",))


async def wait_forever(ctx: TaskContext) -> None:
    await trio.sleep_forever()


def _set(value: object) -> dict[str, Any]:
    return {"type": "command", "action": "set_concurrency", "data": {"concurrency": value}}


def test_the_protocol_the_client_and_the_executor_share_one_limit() -> None:
    assert MAX_CONCURRENCY == executor.MAX_CONCURRENCY == client_commands.MAX_CONCURRENCY


async def test_raising_it_starts_queued_tasks_and_the_update_says_so() -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            served_with_executor(concurrency=1) as stack,
            ws_client(stack.server.port) as ws,
        ):
            await request(ws, {"type": "subscribe", "task_id": "*"})
            for index in range(3):
                stack.executor.submit(wait_forever, task_id=f"t{index}")
            while (await receive_json(ws)).get("task_id") != "t2":
                pass  # t2's task_queued: all three are in, one running
            assert stack.executor.running_count == 1
            await send_json(ws, _set(3))
            reply = update = None
            while reply is None or update is None:
                frame = await receive_json(ws)
                if frame["type"] == "command_result":
                    reply = frame
                elif frame.get("event") == "session_update" and frame["data"]["tasks_running"] == 3:
                    update = frame
    assert reply == {
        "type": "command_result",
        "action": "set_concurrency",
        "status": "concurrency_set",
        "task_id": "*",
        "data": {"concurrency": 3},
    }
    assert update["data"]["concurrency"] == 3


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (_set(0), "data.concurrency: expected a whole number from 1 to 10000, got 0"),
        (_set(10_001), "data.concurrency: expected a whole number from 1 to 10000, got 10001"),
        (_set("4"), 'data.concurrency: expected a whole number from 1 to 10000, got "4"'),
        (_set(2.0), "data.concurrency: expected a whole number from 1 to 10000, got 2.0"),
        (_set(True), "data.concurrency: expected a whole number from 1 to 10000, got true"),
        (
            {"type": "command", "action": "set_concurrency"},
            'data: expected an object like {"concurrency": 4}',
        ),
    ],
)
async def test_bad_values_get_an_error_and_change_nothing(
    frame: dict[str, Any], error: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            served_with_executor(concurrency=2) as stack,
            ws_client(stack.server.port) as ws,
        ):
            reply = await request(ws, frame)
            assert stack.executor.concurrency == 2
    assert reply["type"] == "error"
    assert reply["error"] == error


async def test_a_viewer_may_not_set_it() -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            served_with_executor(TOKENS, concurrency=2) as stack,
            ws_client(stack.server.port, "/ws?token=view-secret") as ws,
        ):
            reply = await request(ws, _set(5))
            assert stack.executor.concurrency == 2
    assert reply["type"] == "error"
    assert "forbidden" in reply["error"]
