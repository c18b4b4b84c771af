"""Direct delivery: idle subscribers' frames written by the publisher's call, over socketpairs.

Unix socketpairs deliver synchronously inside the kernel, so these run on the
mock clock; small socket buffers make the server's writes block or split.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing
import wsproto
import wsproto.events
from _api_support import FakeExecutor, RawWebSocket
from wsproto.extensions import PerMessageDeflate

from api import RuncastServer, ServerConfig
from api.server._direct_writes import FrameCache, ReplayStream, text_frame
from broadcaster import SessionBroadcaster
from events import Published, Publisher, SessionUpdate, Subscription, TaskOutput

CONFIG = ServerConfig(port=0, ping_interval=3600.0, ping_timeout=3600.0)
#: Asked of the kernel for the server's send and the client's receive buffer
#: (Linux doubles it): a few KiB in flight at most.
SMALL_BUFFER = 4096

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "AF_UNIX"), reason="direct writes need POSIX sockets"
)


@attrs.define(eq=False)
class RecordingSessions:
    """The broadcaster, keeping each subscription it hands out."""

    inner: SessionBroadcaster
    opened: list[Subscription] = attrs.field(factory=list)

    def snapshot(self) -> SessionUpdate:
        return self.inner.snapshot()

    def subscribe_session(
        self, *, since: int | None = None, buffer_size: int | None = None
    ) -> Subscription:
        subscription = self.inner.subscribe_session(since=since, buffer_size=buffer_size)
        self.opened.append(subscription)
        return subscription


def _server(config: ServerConfig = CONFIG, *, executor: bool = False) -> RuncastServer:
    publisher = Publisher()
    return RuncastServer(
        config,
        publisher,
        RecordingSessions(SessionBroadcaster(publisher)),
        executor=FakeExecutor(publisher) if executor else None,
    )


def _opened(server: RuncastServer) -> list[Subscription]:
    assert isinstance(server.session_source, RecordingSessions)
    return server.session_source.opened


@asynccontextmanager
async def _client(
    server: RuncastServer, *, small_buffers: bool = False, deflate: bool = False
) -> AsyncIterator[RawWebSocket]:
    client_sock, server_sock = trio.socket.socketpair()
    if small_buffers:
        server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        client_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    client = trio.SocketStream(client_sock)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_connection, trio.SocketStream(server_sock))
        raw = RawWebSocket(client)
        extensions = [PerMessageDeflate()] if deflate else []
        await raw.send(
            wsproto.events.Request(host="127.0.0.1", target="/ws", extensions=extensions)
        )
        accepted = await raw.next_event()
        assert isinstance(accepted, wsproto.events.AcceptConnection), accepted
        assert accepted.extensions == []  # nothing negotiated: frames may be shared
        try:
            yield raw
        finally:
            await client.aclose()


async def _next_message(raw: RawWebSocket) -> wsproto.events.Event | None:
    """The next event, a text message whole (wsproto hands over what has arrived)."""
    event = await raw.next_event()
    if not isinstance(event, wsproto.events.TextMessage):
        return event
    text = event.data
    while not event.message_finished:
        event = await raw.next_event()
        assert isinstance(event, wsproto.events.TextMessage), event  # nothing in between
        text += event.data
    return wsproto.events.TextMessage(text)


async def _frame(raw: RawWebSocket) -> dict[str, Any]:
    event = await _next_message(raw)
    assert isinstance(event, wsproto.events.TextMessage), event
    frame = json.loads(event.data)
    assert isinstance(frame, dict)
    return frame


async def _send(raw: RawWebSocket, message: dict[str, Any]) -> None:
    await raw.send(wsproto.events.TextMessage(json.dumps(message)))


async def _subscribe(raw: RawWebSocket) -> None:
    """Subscribe to everything; returns once the writer is idle (the hook lent)."""
    await _send(raw, {"type": "subscribe", "task_id": "*"})
    assert (await _frame(raw))["type"] == "subscribed"
    assert (await _frame(raw))["event"] == "session_update"  # the snapshot
    await trio.testing.wait_all_tasks_blocked()


def _publish_line(server: RuncastServer, n: int, size: int = 10) -> Published:
    item = server.publisher.publish(TaskOutput(task_id="t", line=f"{n:0{size}d}"))
    assert item is not None
    return item


async def test_idle_subscribers_are_written_directly_one_frame_per_event(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    async with _client(server) as first, _client(server) as second:
        await _subscribe(first)
        await _subscribe(second)
        queued, built = server.delivery.queued, server.frames.built
        published = [_publish_line(server, n) for n in range(5)]
        assert server.delivery.direct == 10
        assert server.delivery.queued == queued  # no writer woken
        assert server.frames.built - built == 5  # framed once for both
        assert [sub.delivered_direct for sub in _opened(server)] == [5, 5]
        for raw in (first, second):
            frames = [await _frame(raw) for _ in published]
            assert [frame["seq"] for frame in frames] == [item.seq for item in published]
            assert [frame["data"]["line"] for frame in frames] == [
                item.event.line for item in published if isinstance(item.event, TaskOutput)
            ]


async def test_full_socket_falls_back_to_the_writer_in_order_then_direct_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    async with _client(server, small_buffers=True) as raw:
        await _subscribe(raw)
        queued = server.delivery.queued
        published: list[Published] = []
        for n in range(40):  # the client reads nothing meanwhile
            published.append(_publish_line(server, n, size=1000))
            await trio.testing.wait_all_tasks_blocked()
        counts = server.delivery
        assert counts.direct >= 1
        assert counts.declined >= 1
        assert counts.queued > queued
        frames = [await _frame(raw) for _ in published]
        assert [frame["seq"] for frame in frames] == [item.seq for item in published]
        await trio.testing.wait_all_tasks_blocked()  # the writer caught up
        assert counts.direct + counts.partial + counts.queued - queued == 40
        direct = counts.direct
        last = _publish_line(server, 99)
        assert counts.direct == direct + 1
        assert (await _frame(raw))["seq"] == last.seq


async def test_partial_write_rest_goes_out_before_anything_queued(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    async with _client(server, small_buffers=True) as raw:
        await _subscribe(raw)
        published: list[Published] = []
        while not server.delivery.partial:
            assert len(published) < 10, "the socket never took a frame in part"
            published.append(_publish_line(server, len(published), size=4000))
        direct = server.delivery.direct
        published += [_publish_line(server, n) for n in range(3)]  # behind the owed rest
        assert server.delivery.direct == direct
        await trio.testing.wait_all_tasks_blocked()
        frames = [await _frame(raw) for _ in published]
        assert [frame["seq"] for frame in frames] == [item.seq for item in published]
        assert frames[len(published) - 4]["data"]["line"] == f"{len(published) - 4:04000d}"


async def test_pongs_and_frames_never_interleave(autojump_clock: trio.testing.MockClock) -> None:
    server = _server()
    async with _client(server, small_buffers=True) as raw:
        await _subscribe(raw)
        published: list[Published] = []
        for n in range(12):
            published.append(_publish_line(server, n, size=3000))
            await raw.send(wsproto.events.Ping(payload=bytes([n])))
            await trio.testing.wait_all_tasks_blocked()  # a pong waits on the full socket
            published.append(_publish_line(server, n))  # declined: trio-websocket is sending
        assert server.delivery.declined >= 1
        texts: list[int] = []
        pongs: list[bytes] = []
        while len(texts) < len(published) or len(pongs) < 12:
            event = await _next_message(raw)  # wsproto rejects a frame split by another
            if isinstance(event, wsproto.events.TextMessage):
                texts.append(json.loads(event.data)["seq"])
            else:
                assert isinstance(event, wsproto.events.Pong), event
                pongs.append(bytes(event.payload))
        assert texts == [item.seq for item in published]
        assert pongs == [bytes([n]) for n in range(12)]


async def test_small_buffer_gaps_and_conflation_with_direct_delivery(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server(attrs.evolve(CONFIG, subscription_buffer=4))
    publisher = server.publisher
    async with _client(server, small_buffers=True) as raw:
        await _subscribe(raw)
        lines = [_publish_line(server, n, size=1000) for n in range(60)]
        updates = [publisher.publish(SessionUpdate(tasks_running=n)) for n in range(5)]
        await trio.testing.wait_all_tasks_blocked()
        (subscription,) = _opened(server)
        assert subscription.dropped > 0
        assert subscription.conflated > 0
        seen: set[int] = set()
        gap_missed = 0
        running: list[int] = []
        while len(running) < 1 or running[-1] != 4:
            frame = await _frame(raw)
            if frame["type"] == "gap":
                gap_missed += frame["missed"]
                seen.update(range(frame["first_seq"], frame["last_seq"] + 1))
            elif frame["event"] == "session_update":
                running.append(frame["data"]["tasks_running"])
            else:
                seen.add(frame["seq"])
        assert seen == {item.seq for item in lines}  # every event: received, or in a gap
        assert gap_missed == subscription.dropped == publisher.dropped_total
        assert len(running) < len(updates)  # conflated, the newest last
        assert server.delivery.direct >= 1


async def test_command_reply_precedes_the_events_it_causes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server(executor=True)
    async with _client(server) as raw:
        await _subscribe(raw)
        declined = server.delivery.declined
        await _send(raw, {"type": "command", "action": "pause"})
        reply = await _frame(raw)
        event = await _frame(raw)
        assert reply["type"] == "command_result"
        assert event["event"] == "executor_paused"
        assert server.delivery.declined == declined + 1
        await trio.testing.wait_all_tasks_blocked()
        direct = server.delivery.direct
        _publish_line(server, 1)  # the writer is idle again: direct
        assert server.delivery.direct == direct + 1


async def test_shutdown_sends_what_was_written_then_the_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    async with _client(server) as raw, trio.open_nursery() as nursery:
        await _subscribe(raw)
        published = [_publish_line(server, n) for n in range(3)]
        nursery.start_soon(server.shutdown)
        await trio.testing.wait_all_tasks_blocked()
        assert server.publisher.subscriber_count() == 0
        assert server.publisher.publish(TaskOutput(task_id="t", line="late")) is not None
        assert [(await _frame(raw))["seq"] for _ in published] == [p.seq for p in published]
        close = await raw.next_event()
        assert isinstance(close, wsproto.events.CloseConnection)
        assert close.code == 1001
        await raw.send(close.response())
        assert await raw.next_event() is None
    assert server.delivery.direct == 3


async def test_nothing_follows_the_close_reply_to_a_client_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    async with _client(server) as raw:
        await _subscribe(raw)
        await raw.send(wsproto.events.CloseConnection(code=1000))
        for n in range(20):  # publishes land at every step of the server's close
            _publish_line(server, n)
            await trio.lowlevel.checkpoint()
        events = []
        while (event := await raw.next_event()) is not None:
            events.append(event)
        assert isinstance(events[-1], wsproto.events.CloseConnection)
        assert all(isinstance(e, wsproto.events.TextMessage) for e in events[:-1])
    assert server.websocket_count == 0


async def test_hooks_are_removed_on_unsubscribe_and_disconnect(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    for cycle in range(30):
        async with _client(server) as raw:
            await _subscribe(raw)
            subscription = _opened(server)[-1]
            assert subscription.direct is not None
            item = _publish_line(server, cycle)
            assert (await _frame(raw))["seq"] == item.seq
            if cycle % 2:
                await _send(raw, {"type": "unsubscribe"})
                assert (await _frame(raw))["type"] == "unsubscribed"
                assert subscription.closed
                assert subscription.direct is None
        assert subscription.closed
        assert subscription.direct is None
        assert server.websocket_count == 0
    assert server.publisher.subscriber_count() == 0
    assert server.delivery.direct == 30
    assert server.frames.built == 30


async def test_deflate_offer_is_declined_and_shared_frames_decode(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    async with _client(server, deflate=True) as raw:
        await _subscribe(raw)
        item = _publish_line(server, 7, size=500)
        assert server.delivery.direct == 1
        frame = await _frame(raw)
        assert frame["data"]["line"] == f"{7:0500d}"
        assert frame["seq"] == item.seq


# -- ReplayStream: the stream both writers share -------------------------------


@asynccontextmanager
async def _stream_pair() -> AsyncIterator[tuple[ReplayStream, socket.socket]]:
    """A ReplayStream over one end of a socketpair; the other end, plain and blocking."""
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    stream = ReplayStream(trio.SocketStream(trio.socket.from_stdlib_socket(ours)), b"")
    try:
        yield stream, theirs
    finally:
        await stream.aclose()
        theirs.close()


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "closed early"
        data += chunk
    return bytes(data)


async def test_send_all_sends_the_rest_of_a_partial_write_first() -> None:
    async with _stream_pair() as (stream, peer):
        first = b"a" * 100_000
        sent = stream.try_write(first)
        assert 0 < sent < len(first)
        assert stream.owed == len(first) - sent
        second = b"b" * 10
        assert stream.try_write(second) == 0  # nothing may pass the owed bytes
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.send_all, second)
            received = await trio.to_thread.run_sync(_read_exactly, peer, len(first) + 10)
        assert received == first + second
        assert stream.owed == 0


async def test_try_write_never_lands_inside_a_send_all() -> None:
    async with _stream_pair() as (stream, peer):
        big = bytes(range(256)) * 400
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.send_all, big)
            await trio.testing.wait_all_tasks_blocked()  # waiting for room
            assert stream.sending
            head = peer.recv(8192)  # room now, but send_all has not run yet
            assert stream.try_write(b"direct") == 0
            rest = await trio.to_thread.run_sync(_read_exactly, peer, len(big) - len(head))
        assert head + rest == big
        assert not stream.sending
        assert stream.try_write(b"direct") == len(b"direct")
        assert peer.recv(100) == b"direct"


async def test_flush_sends_what_is_owed() -> None:
    async with _stream_pair() as (stream, peer):
        frame = b"c" * 50_000
        sent = stream.try_write(frame)
        assert 0 < sent < len(frame)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.flush)
            received = await trio.to_thread.run_sync(_read_exactly, peer, len(frame))
        assert received == frame
        assert stream.owed == 0


async def test_try_write_declines_without_a_usable_socket() -> None:
    memory, _ = trio.testing.memory_stream_pair()
    over_memory = ReplayStream(memory, b"")
    assert not over_memory.can_write_now
    assert over_memory.try_write(b"x") == 0
    async with _stream_pair() as (stream, peer):
        assert stream.can_write_now
        peer.close()
        assert stream.try_write(b"x") == 0  # broken pipe: send_all reports it
        with pytest.raises(trio.BrokenResourceError):
            await stream.send_all(b"x")
    assert stream.try_write(b"x") == 0  # closed


# -- frames ----------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65_535, 65_536, 70_000])
def test_text_frame_is_what_a_client_decodes(length: int) -> None:
    text = ("é" + "x" * length)[:length] if length else ""
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    server.receive_data(client.send(wsproto.events.Request(host="x", target="/ws")))
    (request,) = server.events()
    assert isinstance(request, wsproto.events.Request)
    client.receive_data(server.send(wsproto.events.AcceptConnection()))
    assert isinstance(next(client.events()), wsproto.events.AcceptConnection)
    frame = text_frame(text)
    assert frame == server.send(wsproto.events.TextMessage(text))  # wsproto frames it alike
    client.receive_data(frame)
    (message,) = client.events()
    assert isinstance(message, wsproto.events.TextMessage)
    assert (message.data, message.message_finished) == (text, True)


def test_frame_cache_builds_each_event_once_and_stays_bounded() -> None:
    publisher = Publisher()
    cache = FrameCache(size=3)
    items = [
        item
        for n in range(5)
        if (item := publisher.publish(TaskOutput(task_id="t", line=str(n)))) is not None
    ]
    for item in items:
        assert cache.frame_for(item) == text_frame(item.wire)
        assert cache.frame_for(item) is cache.frame_for(item)
    assert cache.built == 5
    assert cache.frame_for(items[2]) is cache.frame_for(items[2])  # still held
    assert cache.built == 5
    cache.frame_for(items[0])  # evicted: built again
    assert cache.built == 6
    with pytest.raises(ValueError, match="size must be >= 1"):
        FrameCache(size=0)
