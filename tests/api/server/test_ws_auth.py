"""Tokens, roles and Origin at the WebSocket handshake and on HTTP, over loopback."""

from __future__ import annotations

import pytest
import structlog
import trio
import wsproto.events
from _api_support import RawWebSocket, http_get, request, served, ws_client

from api import ServerConfig

TIMEOUT = 10
TOKENS = ServerConfig(port=0, auth_tokens=("op-secret",), viewer_tokens=("view-secret",))


async def _handshake_status(port: int, target: str, headers: list[tuple[bytes, bytes]]) -> int:
    """The HTTP status the server answers a WebSocket handshake with (101 if accepted)."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        raw = RawWebSocket(stream)
        await raw.send(
            wsproto.events.Request(host=f"127.0.0.1:{port}", target=target, extra_headers=headers)
        )
        event = await raw.next_event()
    if isinstance(event, wsproto.events.AcceptConnection):
        return 101
    assert isinstance(event, wsproto.events.RejectConnection), event
    return event.status_code


@pytest.mark.parametrize(
    ("target", "headers", "status"),
    [
        ("/ws", [], 401),
        ("/ws?token=wrong", [], 401),
        ("/ws", [(b"Authorization", b"Bearer wrong")], 401),
        ("/ws?token=op-secret", [], 101),
        ("/ws?token=view-secret", [], 101),
        ("/ws", [(b"Authorization", b"Bearer op-secret")], 101),
        ("/ws?token=op-secret", [(b"Origin", b"http://evil.example")], 403),
        ("/ws?token=op-secret", [(b"Origin", b"http://127.0.0.1:{port}")], 101),
    ],
)
async def test_handshake_tokens_and_origin(
    target: str, headers: list[tuple[bytes, bytes]], status: int
) -> None:
    with trio.fail_after(TIMEOUT), structlog.testing.capture_logs() as logs:
        async with served(TOKENS) as stack:
            port = str(stack.port).encode()
            filled = [(name, value.replace(b"{port}", port)) for name, value in headers]
            assert await _handshake_status(stack.port, target, filled) == status
    refusals = [entry for entry in logs if entry["event"] == "request refused"]
    if status == 101:
        assert refusals == []
    else:
        assert refusals[0]["status"] == status
        assert refusals[0]["path"] == "/ws"


async def test_viewer_reads_but_cannot_command() -> None:
    with trio.fail_after(TIMEOUT), structlog.testing.capture_logs() as logs:
        async with served(TOKENS) as stack, ws_client(stack.port, "/ws?token=view-secret") as ws:
            subscribed = await request(ws, {"type": "subscribe", "task_id": "*"})
            refused = [
                await request(ws, {"type": "command", "action": action, "task_id": "*"})
                for action in ("pause", "resume")
            ]
            cancel = await request(ws, {"type": "command", "action": "cancel", "task_id": "t1"})
            budget = await request(
                ws, {"type": "command", "action": "set_budget", "data": {"budget_usd": 9}}
            )
    assert subscribed["type"] == "subscribed"
    for reply in [*refused, cancel, budget]:
        assert reply["type"] == "error"
        assert "forbidden" in reply["error"]
    assert stack.executor.calls == []
    assert not stack.executor.is_paused
    assert sum(entry["event"] == "command refused" for entry in logs) == 4


async def test_operator_token_may_command() -> None:
    headers = [(b"Authorization", b"Bearer op-secret")]
    with trio.fail_after(TIMEOUT):
        async with served(TOKENS) as stack, ws_client(stack.port, headers=headers) as ws:
            reply = await request(ws, {"type": "command", "action": "pause", "task_id": "*"})
    assert reply["status"] == "paused"
    assert stack.executor.is_paused


@pytest.mark.parametrize("path", ["/", "/api/session", "/api/tasks", "/metrics", "/static/x.js"])
async def test_http_endpoints_need_a_token(path: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with served(TOKENS) as stack:
            missing = await http_get(stack.port, path)
            wrong = await http_get(stack.port, path, headers={"Authorization": "Bearer nope"})
            viewer = await http_get(stack.port, f"{path}?token=view-secret")
            operator = await http_get(
                stack.port, path, headers={"Authorization": "Bearer op-secret"}
            )
    assert missing.status == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status == 401
    expected = 404 if path == "/static/x.js" else 200
    assert viewer.status == expected
    assert operator.status == expected


async def test_healthz_is_open_and_foreign_origins_are_403_on_http() -> None:
    with trio.fail_after(TIMEOUT):
        async with served(TOKENS) as stack:
            health = await http_get(stack.port, "/healthz")
            foreign = await http_get(
                stack.port,
                "/api/session?token=op-secret",
                headers={"Origin": "http://evil.example"},
            )
            same = await http_get(
                stack.port,
                "/api/session?token=op-secret",
                headers={"Origin": f"http://127.0.0.1:{stack.port}"},
            )
    assert health.status == 200
    assert foreign.status == 403
    assert same.status == 200


async def test_allow_origin_admits_a_named_site() -> None:
    config = ServerConfig(port=0, allow_origins=("https://dash.example.com",))
    with trio.fail_after(TIMEOUT):
        async with served(config) as stack:
            allowed = await _handshake_status(
                stack.port, "/ws", [(b"Origin", b"https://dash.example.com")]
            )
            other = await _handshake_status(
                stack.port, "/ws", [(b"Origin", b"https://else.example.com")]
            )
    assert (allowed, other) == (101, 403)
