"""The WebSocket protocol, message by message, over real loopback connections."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing
from _api_support import FakeTask, RawWebSocket, receive_json, request, send_json, served, ws_client
from trio_websocket import WebSocketConnection
from wsproto.events import CloseConnection, TextMessage

from events import Publisher, TaskOutput, TaskQueued, TaskStarted

TIMEOUT = 10


async def test_ping_pong() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            assert await request(ws, {"type": "ping"}) == {"type": "pong"}


async def test_star_subscription_starts_with_the_snapshot() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            stack.publisher.publish(TaskStarted(task_id="t1"))
            await send_json(ws, {"type": "subscribe", "task_id": "*"})
            assert await receive_json(ws) == {"type": "subscribed", "task_id": "*", "since": None}
            snapshot = await receive_json(ws)
            expected = stack.broadcaster.snapshot()
    assert snapshot["type"] == "event"
    assert snapshot["event"] == "session_update"
    assert snapshot["task_id"] == "*"
    assert snapshot["data"]["tasks_running"] == 1
    assert snapshot["data"]["session_id"] == expected.session_id


async def _next_event(ws: WebSocketConnection, name: str) -> dict[str, Any]:
    while True:
        frame = await receive_json(ws)
        if frame.get("event") == name:
            return frame


async def test_star_subscription_gets_live_events() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            await request(ws, {"type": "subscribe", "task_id": "*"})
            stack.publisher.publish(TaskQueued(task_id="t9", name="ninth"))
            frame = await _next_event(ws, "task_queued")
    assert frame["task_id"] == "t9"
    assert frame["data"]["name"] == "ninth"
    assert isinstance(frame["seq"], int)


async def test_task_subscription_sees_only_that_task() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            reply = await request(ws, {"type": "subscribe", "task_id": "t1"})
            stack.publisher.publish(TaskOutput(task_id="other", line="not for you"))
            stack.publisher.publish(TaskOutput(task_id="t1", line="hello"))
            frame = await receive_json(ws)
    assert reply == {"type": "subscribed", "task_id": "t1", "since": None}
    assert frame["event"] == "task_output"
    assert frame["task_id"] == "t1"
    assert frame["data"]["line"] == "hello"


async def test_since_replays_what_came_after() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            first = stack.publisher.publish(TaskOutput(task_id="t1", line="one"))
            stack.publisher.publish(TaskOutput(task_id="t1", line="two"))
            stack.publisher.publish(TaskOutput(task_id="t1", line="three"))
            assert first is not None
            await send_json(ws, {"type": "subscribe", "task_id": "t1", "since": first.seq})
            assert (await receive_json(ws))["type"] == "subscribed"
            lines = [(await receive_json(ws))["data"]["line"] for _ in range(2)]
    assert lines == ["two", "three"]


async def test_since_on_star_replays_then_snapshot() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            stack.publisher.publish(TaskQueued(task_id="a"))
            second = stack.publisher.publish(TaskQueued(task_id="b"))
            assert second is not None
            await send_json(ws, {"type": "subscribe", "task_id": "*", "since": second.seq - 1})
            frames = [await receive_json(ws) for _ in range(3)]
    assert frames[0]["type"] == "subscribed"
    assert frames[0]["since"] == second.seq - 1
    assert (frames[1]["event"], frames[1]["task_id"]) == ("task_queued", "b")
    assert frames[2]["event"] == "session_update"


async def test_since_beyond_history_gives_a_history_gap() -> None:
    publisher = Publisher(history_size=2)
    with trio.fail_after(TIMEOUT):
        async with served(publisher=publisher) as stack, ws_client(stack.port) as ws:
            for n in range(5):
                stack.publisher.publish(TaskOutput(task_id="t1", line=str(n)))
            await request(ws, {"type": "subscribe", "task_id": "t1", "since": 0})
            gap = await receive_json(ws)
            replayed = [(await receive_json(ws))["data"]["line"] for _ in range(2)]
    assert gap == {
        "type": "gap",
        "task_id": "t1",
        "first_seq": 1,
        "last_seq": 3,
        "missed": None,
        "reason": "history",
    }
    assert replayed == ["3", "4"]


async def test_unsubscribe_stops_events() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            await request(ws, {"type": "subscribe", "task_id": "t1"})
            reply = await request(ws, {"type": "unsubscribe"})
            stack.publisher.publish(TaskOutput(task_id="t1", line="after"))
            # Nothing may arrive between the unsubscribe and the pong.
            await send_json(ws, {"type": "ping"})
            next_frame = await receive_json(ws)
            assert stack.publisher.subscriber_count() == 0
    assert reply == {"type": "unsubscribed", "task_id": "t1"}
    assert next_frame == {"type": "pong"}


async def test_a_new_subscription_replaces_the_old_one() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            await request(ws, {"type": "subscribe", "task_id": "t1"})
            await request(ws, {"type": "subscribe", "task_id": "*"})
            assert stack.publisher.subscriber_count("t1") == 0
            assert stack.publisher.subscriber_count("*") == 1


async def test_pause_and_resume_commands() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            await request(ws, {"type": "subscribe", "task_id": "*"})
            paused = await request(ws, {"type": "command", "action": "pause", "task_id": "*"})
            event = await _next_event(ws, "executor_paused")
            assert stack.executor.is_paused
            resumed = await request(ws, {"type": "command", "action": "resume"})
            assert not stack.executor.is_paused
    assert paused == {
        "type": "command_result",
        "action": "pause",
        "status": "paused",
        "task_id": "*",
    }
    assert resumed["status"] == "resumed"
    assert event["data"]["by"] == "operator"


async def test_resume_refused_while_over_budget() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            stack.executor.over_budget = True
            reply = await request(ws, {"type": "command", "action": "resume", "task_id": "*"})
    assert reply["type"] == "error"
    assert "raise the budget" in reply["error"]
    assert reply["action"] == "resume"


async def test_cancel_command() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            stack.executor.rows.append(FakeTask(task_id="done", state="completed"))
            ok = await request(ws, {"type": "command", "action": "cancel", "task_id": "t1"})
            again = await request(ws, {"type": "command", "action": "cancel", "task_id": "done"})
            unknown = await request(ws, {"type": "command", "action": "cancel", "task_id": "zz"})
    assert ok == {
        "type": "command_result",
        "action": "cancel",
        "status": "cancelled",
        "task_id": "t1",
    }
    assert stack.executor.calls[0] == ("cancel", "t1")
    assert again["status"] == "already_ended"
    assert unknown["type"] == "error"
    assert "unknown task 'zz'" in unknown["error"]


async def test_set_budget_command() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            raised = await request(
                ws, {"type": "command", "action": "set_budget", "data": {"budget_usd": 2.5}}
            )
            removed = await request(
                ws, {"type": "command", "action": "set_budget", "data": {"budget_usd": None}}
            )
    assert raised == {
        "type": "command_result",
        "action": "set_budget",
        "status": "budget_set",
        "task_id": "*",
        "data": {"budget_usd": 2.5},
    }
    assert removed["data"] == {"budget_usd": None}
    assert stack.executor.calls == [("set_budget", 2.5), ("set_budget", None)]


BAD_MESSAGES: list[tuple[str | bytes, str]] = [
    ("{nope", "not valid JSON"),
    (b'{"type":"ping"}', "binary frames are not accepted"),
    ("[1, 2]", "must be a JSON object"),
    ('"ping"', "must be a JSON object"),
    ("{}", "type: missing"),
    ('{"type": "dance"}', "unknown message type"),
    ('{"type": 7}', "unknown message type"),
    ('{"type": "subscribe"}', "task_id: missing"),
    ('{"type": "subscribe", "task_id": 5}', "task_id: expected a non-empty string"),
    ('{"type": "subscribe", "task_id": ""}', "task_id: expected a non-empty string"),
    ('{"type": "subscribe", "task_id": "' + "x" * 300 + '"}', "longer than 256"),
    ('{"type": "subscribe", "task_id": "*", "since": -1}', "since: expected"),
    ('{"type": "subscribe", "task_id": "*", "since": true}', "since: expected"),
    ('{"type": "subscribe", "task_id": "*", "since": "3"}', "since: expected"),
    ('{"type": "subscribe", "task_id": "ghost"}', "unknown task 'ghost'"),
    ('{"type": "command"}', "action: missing"),
    ('{"type": "command", "action": "explode"}', "unknown action"),
    ('{"type": "command", "action": "pause", "task_id": "t1"}', "whole executor"),
    ('{"type": "command", "action": "cancel"}', "task_id: missing"),
    ('{"type": "command", "action": "cancel", "task_id": "*"}', "not '*'"),
    ('{"type": "command", "action": "set_budget"}', "data: expected an object"),
    ('{"type": "command", "action": "set_budget", "data": {}}', "budget_usd: missing"),
    ('{"type": "command", "action": "set_budget", "data": {"budget_usd": -1}}', ">= 0"),
    ('{"type": "command", "action": "set_budget", "data": {"budget_usd": "5"}}', "a number"),
    ('{"type": "command", "action": "set_budget", "data": {"budget_usd": NaN}}', "finite"),
    ('{"type": "command", "action": "set_budget", "data": {"budget_usd": 1e999}}', "finite"),
    ("[" * 100_00 + "]" * 100_00, "not valid JSON"),
]


@pytest.mark.parametrize(("message", "complaint"), BAD_MESSAGES)
async def test_every_bad_message_gets_an_error_and_the_connection_lives(
    message: str | bytes, complaint: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            await ws.send_message(message)
            reply = await receive_json(ws)
            assert await request(ws, {"type": "ping"}) == {"type": "pong"}
    assert reply["type"] == "error"
    assert complaint in reply["error"]
    assert stack.executor.calls == []


async def test_commands_without_an_executor_are_errors() -> None:
    with trio.fail_after(TIMEOUT):
        async with served(with_executor=False) as stack, ws_client(stack.port) as ws:
            reply = await request(ws, {"type": "command", "action": "pause"})
            subscribed = await request(ws, {"type": "subscribe", "task_id": "anything"})
    assert reply["type"] == "error"
    assert "no executor" in reply["error"]
    assert subscribed["type"] == "subscribed"


async def test_oversized_frame_closes_with_1009_and_server_lives() -> None:
    # A bare client: trio-websocket's own leaks its socket when the server closes first.
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            async with await trio.open_tcp_stream("127.0.0.1", stack.port) as stream:
                raw = RawWebSocket(stream)
                await raw.handshake()
                await raw.send(TextMessage(json.dumps({"type": "ping", "pad": "x" * 70_000})))
                closing = await raw.next_event()
                after = await raw.next_event()
            async with ws_client(stack.port) as ws:
                assert await request(ws, {"type": "ping"}) == {"type": "pong"}
    assert isinstance(closing, CloseConnection)
    assert closing.code == 1009
    assert after is None


async def test_frame_just_under_the_limit_is_accepted() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            frame = json.dumps({"type": "ping", "pad": ""})
            padded = frame.replace('""', '"' + "x" * (64 * 1024 - len(frame)) + '"')
            assert len(padded) == 64 * 1024
            assert await request(ws, json.loads(padded)) == {"type": "pong"}


async def test_connections_are_counted() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            gauge = stack.metrics.websocket_connections
            async with ws_client(stack.port) as one, ws_client(stack.port) as two:
                await request(one, {"type": "ping"})
                await request(two, {"type": "ping"})
                assert gauge._value.get() == 2
                assert stack.server.websocket_count == 2
            # Both clients completed their close handshakes; the server's
            # bookkeeping ends in the same turn as its side of the close.
            await stack.server.shutdown()
            assert stack.server.websocket_count == 0
            assert gauge._value.get() == 0


async def test_shutdown_delivers_what_is_queued_then_closes_with_1001() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            async with await trio.open_tcp_stream("127.0.0.1", stack.port) as stream:
                raw = RawWebSocket(stream)
                await raw.handshake()
                await raw.send(TextMessage(json.dumps({"type": "subscribe", "task_id": "t1"})))
                assert isinstance(await raw.next_event(), TextMessage)  # subscribed
                for n in range(20):
                    stack.publisher.publish(TaskOutput(task_id="t1", line=str(n)))
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(stack.server.shutdown)
                    lines = []
                    while not isinstance(event := await raw.next_event(), CloseConnection):
                        assert isinstance(event, TextMessage)
                        lines.append(json.loads(event.data)["data"]["line"])
                    await raw.send(event.response())
                    assert await raw.next_event() is None
            with pytest.raises(OSError, match="all attempts to connect"):
                await trio.open_tcp_stream("127.0.0.1", stack.port)
    assert event.code == 1001
    assert lines == [str(n) for n in range(20)]
    assert stack.publisher.subscriber_count() == 0


async def test_stop_accepting_keeps_connected_clients() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            await request(ws, {"type": "ping"})
            stack.server.stop_accepting()
            # The accept loop notices at its next checkpoint.
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(OSError, match="all attempts to connect"):
                await trio.open_tcp_stream("127.0.0.1", stack.port)
            assert await request(ws, {"type": "ping"}) == {"type": "pong"}
