"""WebSocket sessions over memory streams on the mock clock: keepalive and slow clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing
import wsproto.events
from _api_support import RawWebSocket
from trio_websocket import wrap_client_stream

from api import RuncastServer, ServerConfig
from broadcaster import SessionBroadcaster
from events import Publisher, TaskOutput

CONFIG = ServerConfig(port=0, ping_interval=20.0, ping_timeout=20.0)


def _server(config: ServerConfig = CONFIG) -> RuncastServer:
    publisher = Publisher()
    return RuncastServer(config, publisher, SessionBroadcaster(publisher))


@asynccontextmanager
async def _raw_client(
    server: RuncastServer, *, lockstep: bool = False
) -> AsyncIterator[RawWebSocket]:
    pair = trio.testing.lockstep_stream_pair if lockstep else trio.testing.memory_stream_pair
    client, server_side = pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_connection, server_side)
        raw = RawWebSocket(client)
        await raw.handshake()
        try:
            yield raw
        finally:
            await client.aclose()


def _json(event: wsproto.events.Event | None) -> dict[str, Any]:
    assert isinstance(event, wsproto.events.TextMessage), event
    frame = json.loads(event.data)
    assert isinstance(frame, dict)
    return frame


async def test_unresponsive_client_is_dropped(autojump_clock: trio.testing.MockClock) -> None:
    server = _server()
    async with _raw_client(server) as raw:
        start = trio.current_time()
        await trio.sleep(39.9)
        assert server.websocket_count == 1
        await trio.sleep(0.2)
        assert server.websocket_count == 0
        assert isinstance(await raw.next_event(), wsproto.events.Ping)
        assert await raw.next_event() is None  # dropped without a close handshake
        assert trio.current_time() - start == 40.1


async def test_client_answering_pings_stays(autojump_clock: trio.testing.MockClock) -> None:
    server = _server()
    client, server_side = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_connection, server_side)
        # Typed for sockets only, but any trio stream works.
        ws = await wrap_client_stream(nursery, client, "localhost", "/ws")  # type: ignore[arg-type]
        await trio.sleep(300)
        assert server.websocket_count == 1
        await ws.send_message('{"type": "ping"}')
        assert json.loads(await ws.get_message()) == {"type": "pong"}
        await ws.aclose()


async def test_talking_client_is_not_pinged(autojump_clock: trio.testing.MockClock) -> None:
    server = _server()
    async with _raw_client(server) as raw:
        for _ in range(10):
            await trio.sleep(15)
            await raw.send(wsproto.events.TextMessage('{"type": "ping"}'))
            # The pong is the very next frame: no control ping came in between.
            assert _json(await raw.next_event()) == {"type": "pong"}
        assert server.websocket_count == 1


async def test_slow_client_gets_a_gap_and_stalls_nobody(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server(ServerConfig(port=0, subscription_buffer=4))
    subscribe = wsproto.events.TextMessage('{"type": "subscribe", "task_id": "t1"}')
    async with _raw_client(server, lockstep=True) as slow, _raw_client(server) as fast:
        for raw in (slow, fast):
            await raw.send(subscribe)
            assert _json(await raw.next_event())["type"] == "subscribed"
        for n in range(50):
            server.publisher.publish(TaskOutput(task_id="t1", line=str(n)))
            # The fast client's writer keeps up; the slow one's stays stuck in its send.
            await trio.testing.wait_all_tasks_blocked()
        fast_lines = [_json(await fast.next_event())["data"]["line"] for _ in range(50)]
        assert fast_lines == [str(n) for n in range(50)]

        slow_frames: list[dict[str, Any]] = []
        while len(slow_frames) < 6:
            slow_frames.append(_json(await slow.next_event()))
    events = [frame for frame in slow_frames if frame["type"] == "event"]
    gap = slow_frames[-1]
    # One frame was already being written, four waited in the buffer, the rest were counted.
    assert len(events) == 5
    assert gap["type"] == "gap"
    assert gap["reason"] == "overflow"
    assert gap["missed"] == 45
    assert gap["last_seq"] - gap["first_seq"] + 1 == 45
    assert server.publisher.dropped_total == 45


async def test_session_ends_and_unsubscribes_when_client_vanishes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    async with _raw_client(server) as raw:
        await raw.send(wsproto.events.TextMessage('{"type": "subscribe", "task_id": "*"}'))
        assert _json(await raw.next_event())["type"] == "subscribed"
        assert server.publisher.subscriber_count() == 1
    # The client closed its stream without a close frame; the handler has returned.
    assert server.publisher.subscriber_count() == 0
    assert server.websocket_count == 0


async def test_shutdown_cuts_off_a_client_that_does_not_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server(ServerConfig(port=0, close_timeout=2.0))
    async with _raw_client(server, lockstep=True) as stuck:
        await stuck.send(wsproto.events.TextMessage('{"type": "subscribe", "task_id": "t1"}'))
        assert _json(await stuck.next_event())["type"] == "subscribed"
        server.publisher.publish(TaskOutput(task_id="t1", line="never read"))
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        await server.shutdown()
        # Two bounded waits: for the queue to drain, then for the close frame to go out.
        assert trio.current_time() - start == 4.0
        assert server.websocket_count == 0
        assert server.publisher.subscriber_count() == 0
