"""The WebSocket client and the one-shot commands against a small fake server on loopback.

The fake speaks just enough of the protocol to check what the client sends, how it
reads replies, and which exit code each failure gives.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from trio_websocket import (
    ConnectionClosed,
    WebSocketRequest,
    serve_websocket,
    wrap_client_stream,
    wrap_server_stream,
)

from api.cli._client_commands import _bounded, register
from api.clients._connection import Backoff, RuncastClient, open_client
from api.clients._exceptions import AuthRefusedError, ErrorReplyError, ServerUnreachableError
from api.clients._view import SessionView
from api.clients._watch import DEAD_AFTER, REDRAW_INTERVAL, Screen, _Follower

Handler = Callable[[WebSocketRequest], Awaitable[None]]


@asynccontextmanager
async def fake_server(handler: Handler) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
        yield f"ws://127.0.0.1:{server.port}/ws"
        nursery.cancel_scope.cancel()


def replying(
    reply: Callable[[dict[str, Any]], list[dict[str, Any]]],
    seen: list[dict[str, Any]],
    headers: list[dict[bytes, bytes]] | None = None,
) -> Handler:
    """A handler answering each client frame with the frames ``reply`` returns."""

    async def handle(request: WebSocketRequest) -> None:
        if headers is not None:
            headers.append(dict(request.headers))
        ws = await request.accept()
        with contextlib.suppress(ConnectionClosed):  # the client hung up
            while True:
                frame = json.loads(await ws.get_message())
                seen.append(frame)
                for answer in reply(frame):
                    await ws.send_message(json.dumps(answer))

    return handle


def ok_result(frame: dict[str, Any]) -> list[dict[str, Any]]:
    noise = {"type": "event", "event": "task_output", "task_id": "t", "seq": 1, "data": {}}
    result = {
        "type": "command_result",
        "action": frame.get("action"),
        "status": "ok",
        "task_id": frame.get("task_id"),
    }
    return [noise, result]


def error_reply(frame: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "error", "error": f"unknown task {frame.get('task_id')!r}"}]


def refuse(status: int) -> Handler:
    async def handle(request: WebSocketRequest) -> None:
        await request.reject(status)

    return handle


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse(argv: list[str]) -> argparse.Namespace:
    root = argparse.ArgumentParser(prog="runcast")
    register(root.add_subparsers(dest="command", required=True))
    return root.parse_args(argv)


async def run_cli(argv: list[str]) -> int:
    """Run a command's handler as the CLI would (it calls trio.run, so in a thread)."""
    args = parse(argv)
    code: int = await trio.to_thread.run_sync(args.handler, args)
    return code


async def test_command_sends_the_frame_and_skips_unrelated_frames() -> None:
    seen: list[dict[str, Any]] = []
    headers: list[dict[bytes, bytes]] = []
    async with fake_server(replying(ok_result, seen, headers)) as url:
        with trio.fail_after(10):
            async with open_client(url, token="sekrit") as client:
                reply = await client.command("cancel", task_id="t1")
    assert reply == {"type": "command_result", "action": "cancel", "status": "ok", "task_id": "t1"}
    assert seen == [{"type": "command", "action": "cancel", "task_id": "t1"}]
    assert headers[0][b"authorization"] == b"Bearer sekrit"


async def test_error_frame_raises_with_its_text() -> None:
    async with fake_server(replying(error_reply, [])) as url:
        with trio.fail_after(10):
            async with open_client(url) as client:
                with pytest.raises(ErrorReplyError, match="unknown task 'nope'"):
                    await client.command("cancel", task_id="nope")


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_handshake_is_an_auth_error(status: int) -> None:
    async with fake_server(refuse(status)) as url:
        with trio.fail_after(10), pytest.raises(AuthRefusedError, match=f"refused \\({status}"):
            async with open_client(url, token="wrong"):
                pass  # pragma: no cover


async def test_unreachable_server() -> None:
    url = f"ws://127.0.0.1:{closed_port()}/ws"
    with trio.fail_after(10), pytest.raises(ServerUnreachableError, match="cannot connect"):
        async with open_client(url):
            pass  # pragma: no cover


async def test_connection_dropped_mid_request_is_unreachable() -> None:
    async def hang_up(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.get_message()
        await ws.aclose(1011, "going away")

    async with fake_server(hang_up) as url:
        with trio.fail_after(10):
            async with open_client(url) as client:
                with pytest.raises(ServerUnreachableError, match="connection closed"):
                    await client.ping()


async def test_cli_commands_print_the_result(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[dict[str, Any]] = []
    async with fake_server(replying(ok_result, seen)) as url:
        with trio.fail_after(20):
            assert await run_cli(["pause", url]) == 0
            assert await run_cli(["resume", url]) == 0
            assert await run_cli(["cancel", "t9", url]) == 0
            assert await run_cli(["budget", "set", "2.5", url]) == 0
            assert await run_cli(["budget", "set", "none", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "pause: ok",
        "resume: ok",
        "cancel t9: ok",
        "set_budget: ok (budget $2.50)",
        "set_budget: ok (budget none)",
    ]
    assert seen == [
        {"type": "command", "action": "pause", "task_id": "*"},
        {"type": "command", "action": "resume", "task_id": "*"},
        {"type": "command", "action": "cancel", "task_id": "t9"},
        {"type": "command", "action": "set_budget", "task_id": "*", "data": {"budget_usd": 2.5}},
        {"type": "command", "action": "set_budget", "task_id": "*", "data": {"budget_usd": None}},
    ]


async def test_cli_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(20):
        async with fake_server(replying(error_reply, [])) as url:
            assert await run_cli(["cancel", "nope", url]) == 1
        async with fake_server(refuse(401)) as url:
            assert await run_cli(["pause", url, "--token", "bad"]) == 4
            assert await run_cli(["status", url]) == 4
        unreachable = f"ws://127.0.0.1:{closed_port()}/ws"
        assert await run_cli(["resume", unreachable]) == 3
        assert await run_cli(["watch", unreachable]) == 3
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 5
    assert err[0] == "runcast cancel: server error: unknown task 'nope'"
    assert err[1].endswith("refused (401 missing or wrong token)")
    assert "cannot connect" in err[3]
    # A URL that is not one is a bad argument: argparse's exit 2, with the usage.
    for bad, why in (
        (
            "ftp://nope",
            "URL must look like ws://HOST:PORT/ws, http://HOST:PORT/ or HOST:PORT, got 'ftp://nope'",
        ),
        ("ws://127.0.0.1:99999/ws", "URL 'ws://127.0.0.1:99999/ws': Port out of range"),
    ):
        with pytest.raises(SystemExit) as exc_info:
            parse(["pause", bad])
        assert exc_info.value.code == 2
        assert f"argument URL: {why}" in capsys.readouterr().err


async def test_silent_server_times_out_as_unreachable(autojump_clock: trio.abc.Clock) -> None:
    with pytest.raises(ServerUnreachableError, match=r"no answer within 2\.5s"):
        await _bounded(2.5, "ws://h:1/ws", trio.sleep_forever)
    assert trio.current_time() == pytest.approx(2.5)


async def test_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    headers: list[dict[bytes, bytes]] = []
    monkeypatch.setenv("RUNCAST_TOKEN", "from-env")
    async with fake_server(replying(ok_result, [], headers)) as url:
        with trio.fail_after(10):
            assert await run_cli(["pause", url]) == 0
    assert headers[0][b"authorization"] == b"Bearer from-env"


async def test_watch_pings_a_quiet_server_then_gives_it_up(autojump_clock: trio.abc.Clock) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    seen: list[dict[str, Any]] = []

    async def silent_server() -> None:
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, server_stream)
            ws = await request.accept()
            with contextlib.suppress(ConnectionClosed):
                while True:
                    seen.append(json.loads(await ws.get_message()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(silent_server)
        ws = await wrap_client_stream(nursery, client_stream, "h", "/ws")  # type: ignore[arg-type]
        view = SessionView(needs_resync=False)
        follower = _Follower(
            RuncastClient("ws://h/ws", ws),
            "ws://h/ws",
            None,
            view,
            Screen(io.StringIO(), redraw=False),
            Backoff(),
        )
        started = trio.current_time()
        with pytest.raises(ServerUnreachableError, match="no answer for 45s"):
            await follower.run()
        assert trio.current_time() - started == pytest.approx(DEAD_AFTER, abs=REDRAW_INTERVAL)
        nursery.cancel_scope.cancel()
    assert seen == [{"type": "subscribe", "task_id": "*"}, {"type": "ping"}]
