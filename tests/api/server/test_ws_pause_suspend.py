"""The pause command's ``data.suspend`` and the pause's who/why in ``session_update``."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from _api_support import receive_json, request, served, served_with_executor, ws_client

from api.server._config import ServerConfig

TIMEOUT = 10
TOKENS = ServerConfig(port=0, auth_tokens=("op-secret",), viewer_tokens=("view-secret",))


async def test_an_operator_pause_can_suspend() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            suspended = await request(
                ws, {"type": "command", "action": "pause", "data": {"suspend": True}}
            )
            plain = await request(ws, {"type": "command", "action": "pause", "task_id": "*"})
            not_suspended = await request(
                ws, {"type": "command", "action": "pause", "data": {"suspend": False}}
            )
    assert suspended == {
        "type": "command_result",
        "action": "pause",
        "status": "paused",
        "task_id": "*",
        "data": {"suspend": True},
    }
    assert plain == {
        "type": "command_result",
        "action": "pause",
        "status": "paused",
        "task_id": "*",
    }
    assert not_suspended["data"] == {"suspend": False}
    assert stack.executor.suspends == [True, None, False]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"suspend": "yes"}, 'data.suspend: expected true or false, got "yes"'),
        ({"suspend": 1}, "data.suspend: expected true or false, got 1"),
        ([True], 'data: expected an object like {"suspend": true}'),
        ({"suspnd": True}, 'data: unknown key "suspnd" for pause (expected suspend)'),
    ],
)
async def test_a_bad_suspend_is_refused_and_nothing_pauses(data: object, error: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            reply = await request(ws, {"type": "command", "action": "pause", "data": data})
    assert reply["type"] == "error"
    assert reply["error"] == error
    assert stack.executor.calls == []
    assert not stack.executor.is_paused


async def test_a_viewer_may_not_suspend() -> None:
    with trio.fail_after(TIMEOUT):
        async with served(TOKENS) as stack, ws_client(stack.port, "/ws?token=view-secret") as ws:
            reply = await request(
                ws, {"type": "command", "action": "pause", "data": {"suspend": True}}
            )
    assert reply["type"] == "error"
    assert "forbidden" in reply["error"]
    assert stack.executor.suspends == []
    assert not stack.executor.is_paused


async def _session_update(ws: Any, paused: bool) -> dict[str, Any]:
    while True:
        frame = await receive_json(ws)
        if frame.get("event") == "session_update" and frame["data"]["is_paused"] is paused:
            data: dict[str, Any] = frame["data"]
            return data


async def test_session_update_says_who_paused_and_why() -> None:
    with trio.fail_after(TIMEOUT):
        async with served_with_executor() as stack, ws_client(stack.server.port) as ws:
            await request(ws, {"type": "subscribe", "task_id": "*"})
            await request(ws, {"type": "command", "action": "pause", "data": {"suspend": True}})
            paused = await _session_update(ws, True)
            suspended = stack.executor.is_suspended
            await request(ws, {"type": "command", "action": "resume"})
            resumed = await _session_update(ws, False)
    assert paused["paused_by"] == "operator"
    assert paused["pause_reason"].startswith("websocket command from 127.0.0.1")
    assert suspended
    assert (resumed["paused_by"], resumed["pause_reason"]) == (None, None)
