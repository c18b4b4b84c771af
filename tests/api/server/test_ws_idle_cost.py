"""What an idle subscriber costs, and the keepalive and bounds that now live in its one task.

An idle WebSocket subscriber holds one trio task (its connection's): the writer
task exists only while frames are queued, and the keepalive is the reader's wait.
These pin that, and that dead or non-reading clients are still cut off on time.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
import wsproto
import wsproto.events
from _api_support import RawWebSocket
from wsproto.frame_protocol import FrameProtocol

from api import RuncastServer, ServerConfig
from api.server._direct_writes import ReplayStream
from broadcaster import SessionBroadcaster
from events import Publisher, TaskOutput

CONFIG = ServerConfig(port=0, ping_interval=20.0, ping_timeout=20.0)
SUBSCRIBE = wsproto.events.TextMessage('{"type": "subscribe", "task_id": "*"}')
PING = wsproto.events.TextMessage('{"type": "ping"}')


def _server(config: ServerConfig = CONFIG) -> RuncastServer:
    publisher = Publisher()
    return RuncastServer(config, publisher, SessionBroadcaster(publisher))


def _json(event: wsproto.events.Event | None) -> dict[str, Any]:
    assert isinstance(event, wsproto.events.TextMessage), event
    frame = json.loads(event.data)
    assert isinstance(frame, dict)
    return frame


async def _whole_json(raw: RawWebSocket) -> dict[str, Any]:
    """The next text message whole (wsproto hands over what has arrived so far)."""
    text = ""
    while True:
        event = await raw.next_event()
        assert isinstance(event, wsproto.events.TextMessage), event
        text += event.data
        if event.message_finished:
            return _json(wsproto.events.TextMessage(text))


def _tasks_under(task: trio.lowlevel.Task) -> list[trio.lowlevel.Task]:
    found = [task]
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            found += _tasks_under(child)
    return found


def _live_tasks() -> list[str]:
    root = trio.lowlevel.current_root_task()
    assert root is not None
    return [task.name.rsplit(".", 1)[-1] for task in _tasks_under(root)]


@asynccontextmanager
async def _client(
    server: RuncastServer, pair: str = "socket", handshake_extra: bytes = b""
) -> AsyncIterator[RawWebSocket]:
    """A bare client over a socketpair (direct writes possible), or lockstep memory streams."""
    if pair == "socket":
        client_sock, server_sock = trio.socket.socketpair()
        client: trio.abc.Stream = trio.SocketStream(client_sock)
        server_side: trio.abc.Stream = trio.SocketStream(server_sock)
    else:
        client, server_side = trio.testing.lockstep_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_connection, server_side)
        raw = RawWebSocket(client)
        request = raw.conn.send(wsproto.events.Request(host="127.0.0.1", target="/ws"))
        await client.send_all(request + handshake_extra)
        accepted = await raw.next_event()
        assert isinstance(accepted, wsproto.events.AcceptConnection), accepted
        try:
            yield raw
        finally:
            await client.aclose()


async def _subscribe(raw: RawWebSocket) -> None:
    await raw.send(SUBSCRIBE)
    assert _json(await raw.next_event())["type"] == "subscribed"
    assert _json(await raw.next_event())["event"] == "session_update"
    await trio.testing.wait_all_tasks_blocked()


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="direct writes need POSIX sockets")
async def test_an_idle_subscriber_holds_one_task_and_a_writer_only_while_frames_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    before = _live_tasks()
    async with _client(server) as raw:
        await _subscribe(raw)
        # The connection's own task, nothing else: no writer, keepalive or library reader.
        assert len(_live_tasks()) == len(before) + 1
        assert "_write_loop" not in _live_tasks()
        sock = raw.stream
        assert isinstance(sock, trio.SocketStream)
        sock.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        published: list[int] = []
        while "_write_loop" not in _live_tasks():  # fill the socket: frames queue
            assert len(published) < 500, "the socket never filled"
            item = server.publisher.publish(TaskOutput(task_id="t", line="x" * 2000))
            assert item is not None
            published.append(item.seq)
            await trio.testing.wait_all_tasks_blocked()
        assert [(await _whole_json(raw))["seq"] for _ in published] == published
        await trio.testing.wait_all_tasks_blocked()
        assert "_write_loop" not in _live_tasks()  # caught up: the writer ended
        assert len(_live_tasks()) == len(before) + 1


async def test_a_ping_follows_the_last_thing_heard_by_ping_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    async with _client(server, pair="lockstep") as raw:
        await trio.sleep(5)
        await raw.send(PING)
        assert _json(await raw.next_event()) == {"type": "pong"}
        heard = trio.current_time()
        assert isinstance(await raw.next_event(), wsproto.events.Ping)
        assert trio.current_time() - heard == pytest.approx(20.0)


async def test_a_client_that_reads_nothing_is_dropped_while_frames_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    async with _client(server, pair="lockstep") as raw:
        await _subscribe(raw)
        heard = trio.current_time()
        for n in range(5):  # the writer's first send blocks: the client reads nothing
            server.publisher.publish(TaskOutput(task_id="t", line=str(n)))
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep_until(heard + 39.9)
        assert server.websocket_count == 1  # the ping waits behind the blocked frame
        await trio.sleep_until(heard + 40.1)
        assert server.websocket_count == 0
        assert server.publisher.subscriber_count() == 0


async def test_a_reply_to_a_client_that_reads_nothing_is_bounded_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    async with _client(server, pair="lockstep") as raw:
        await raw.send(PING)  # the pong's send blocks: the reader itself is stuck
        heard = trio.current_time()
        await trio.sleep_until(heard + 39.9)
        assert server.websocket_count == 1
        await trio.sleep_until(heard + 40.1)
        assert server.websocket_count == 0


async def test_messages_sent_right_behind_the_handshake_are_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # wsproto's server handshake dropped them (it keeps no bytes after the head).
    server = _server()
    client = FrameProtocol(client=True, extensions=[])
    behind_head = bytes(client.send_data('{"type": "ping"}', fin=True))
    async with _client(server, handshake_extra=behind_head) as raw:
        assert _json(await raw.next_event()) == {"type": "pong"}


async def test_a_broken_frame_gets_a_1002_close_and_the_end_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    async with _client(server) as raw:
        unmasked_text = b"\x81\x02hi"  # a client must mask its frames
        await raw.stream.send_all(unmasked_text)
        start = trio.current_time()
        close = await raw.next_event()
        assert isinstance(close, wsproto.events.CloseConnection), close
        assert close.code == 1002
        assert await raw.next_event() is None  # FIN: no wait for our close reply
        assert trio.current_time() == start


async def test_a_message_over_the_limit_in_fragments_is_refused_with_1009(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server(ServerConfig(port=0, max_message_bytes=1000))
    async with _client(server) as raw:
        for _ in range(3):  # each fragment is under the limit, the message is not
            await raw.send(wsproto.events.TextMessage("x" * 400, message_finished=False))
        close = await raw.next_event()
        assert isinstance(close, wsproto.events.CloseConnection), close
        assert close.code == 1009
        assert await raw.next_event() is None
    assert server.websocket_count == 0


async def test_replay_stream_keeps_its_bytes_when_a_read_is_cancelled() -> None:
    inner, _ = trio.testing.memory_stream_pair()
    stream = ReplayStream(inner, b"already read")
    with trio.CancelScope() as scope:
        scope.cancel()
        await stream.receive_some(100)
    assert stream.buffered == b"already read"
    assert await stream.receive_some(100) == b"already read"
