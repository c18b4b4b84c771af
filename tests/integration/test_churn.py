"""Churn: 2,000 connect/subscribe/abrupt-close cycles leave nothing behind.

Clients connect over loopback and go away at every awkward moment: mid-head,
right after the upgrade request, after subscribing (FIN or TCP reset), halfway
through a frame (reset via ``SO_LINGER`` 0), after a plain HTTP request, or never
sending anything until the server's head timeout answers 408. Events are published
all along, so writers are busy when their sockets die. Afterwards the publisher has
no subscriber, the connection gauge and the server's session table are at zero, and
the server's nursery tree holds exactly the tasks it held before the churn.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import attrs
import pytest
import structlog
import trio
import wsproto.events
from _api_support import FakeExecutor, FakeTask, RawWebSocket, parse_reply, request, ws_client
from _live_stack import eventually
from prometheus_client import CollectorRegistry

from api import RuncastServer, ServerConfig, serve_runcast
from broadcaster import RuncastMetrics, serve_broadcaster
from events import Publisher, TaskOutput

pytestmark = pytest.mark.integration

CYCLES = 2_000
CONCURRENCY = 50
TIMEOUT = 90
#: Short, so the clients that never send anything are answered soon; long enough for
#: a real client's head on a busy machine.
HEAD_TIMEOUT = 2.0
#: Every this many cycles, one client sends nothing at all (it waits out HEAD_TIMEOUT).
SILENT_EVERY = 100
SETTLE_SECONDS = 15
UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
SUBSCRIBE = wsproto.events.TextMessage(json.dumps({"type": "subscribe", "task_id": "*"}))


def reset_on_close(stream: trio.SocketStream) -> None:
    """Make closing send a TCP RST instead of a FIN (SO_LINGER on, timeout 0)."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def connect(port: int) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", port)


async def subscribed_client(port: int) -> RawWebSocket:
    raw = RawWebSocket(await connect(port))
    await raw.handshake()
    await raw.send(SUBSCRIBE)
    reply = await raw.next_event()
    assert isinstance(reply, wsproto.events.TextMessage), reply
    assert json.loads(reply.data)["type"] == "subscribed"
    return raw


# -- the ways a client goes away ----------------------------------------------------
async def half_head_then_fin(port: int) -> None:
    async with await connect(port) as stream:
        await stream.send_all(UPGRADE[: len(UPGRADE) // 2])


async def upgrade_then_reset(port: int) -> None:
    stream = await connect(port)
    await stream.send_all(UPGRADE)
    reset_on_close(stream)
    await stream.aclose()


async def subscribed_then_fin(port: int) -> None:
    raw = await subscribed_client(port)
    await raw.stream.aclose()


async def subscribed_then_reset(port: int) -> None:
    raw = await subscribed_client(port)
    assert isinstance(raw.stream, trio.SocketStream)
    reset_on_close(raw.stream)
    await raw.stream.aclose()


async def half_frame_then_reset(port: int) -> None:
    raw = await subscribed_client(port)
    assert isinstance(raw.stream, trio.SocketStream)
    frame = raw.conn.send(
        wsproto.events.TextMessage(json.dumps({"type": "ping", "pad": "x" * 600}))
    )
    await raw.stream.send_all(frame[: len(frame) // 2])
    reset_on_close(raw.stream)
    await raw.stream.aclose()


async def http_request_then_reset(port: int) -> None:
    stream = await connect(port)
    await stream.send_all(b"GET /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    reset_on_close(stream)
    await stream.aclose()


async def clean_session(port: int) -> None:
    async with ws_client(port) as ws:
        assert await request(ws, {"type": "subscribe", "task_id": "*"}) == {
            "type": "subscribed",
            "task_id": "*",
            "since": None,
        }
        assert await request(ws, {"type": "ping"}) == {"type": "pong"}


async def silent_until_408(port: int) -> None:
    async with await connect(port) as stream:
        received = bytearray()
        while chunk := await stream.receive_some(4096):
            received += chunk
    assert parse_reply(bytes(received)).status == 408


CYCLE_KINDS: list[Callable[[int], Awaitable[None]]] = [
    half_head_then_fin,
    upgrade_then_reset,
    subscribed_then_fin,
    subscribed_then_reset,
    half_frame_then_reset,
    http_request_then_reset,
    clean_session,
]


def kind_of_cycle(number: int) -> Callable[[int], Awaitable[None]]:
    if number % SILENT_EVERY == 0:
        return silent_until_408
    return CYCLE_KINDS[number % len(CYCLE_KINDS)]


# -- the server under test, in a nursery of its own ----------------------------------
@attrs.define(eq=False)
class Served:
    publisher: Publisher
    metrics: RuncastMetrics
    server: RuncastServer
    nursery: trio.Nursery

    def tasks(self) -> list[str]:
        """The name of every task in the server's nursery tree."""
        names: list[str] = []
        pending = [self.nursery]
        while pending:
            nursery = pending.pop()
            for task in nursery.child_tasks:
                names.append(task.name)
                pending.extend(task.child_nurseries)
        return sorted(names)

    def connections_gauge(self) -> float:
        return self.metrics.registry.get_sample_value("runcast_websocket_connections") or 0.0


@asynccontextmanager
async def churn_server() -> AsyncIterator[Served]:
    publisher = Publisher()
    metrics = RuncastMetrics(CollectorRegistry(), publisher)
    executor = FakeExecutor(publisher, rows=[FakeTask(task_id="t1")])
    config = ServerConfig(port=0, head_timeout=HEAD_TIMEOUT, close_timeout=0.5)
    async with trio.open_nursery() as outer:
        broadcaster = await outer.start(serve_broadcaster, publisher)
        async with trio.open_nursery() as server_nursery:
            server = await server_nursery.start(
                lambda task_status: serve_runcast(
                    publisher,
                    session_source=broadcaster,
                    executor=executor,
                    metrics=metrics,
                    config=config,
                    task_status=task_status,
                )
            )
            try:
                yield Served(publisher, metrics, server, server_nursery)
            finally:
                server_nursery.cancel_scope.cancel()
        outer.cancel_scope.cancel()
    metrics.close()


async def publish_steadily(publisher: Publisher) -> None:
    """Keep the writers busy: one event a millisecond, for "*" and task subscribers."""
    for n in range(10**9):
        publisher.publish(TaskOutput(task_id="t1", line=f"line {n}"))
        await trio.sleep(0.001)


async def churn(port: int) -> dict[str, int]:
    limiter = trio.CapacityLimiter(CONCURRENCY)
    done: dict[str, int] = {}

    async def one_cycle(number: int) -> None:
        kind = kind_of_cycle(number)
        try:
            await kind(port)
        finally:
            limiter.release_on_behalf_of(number)
        done[kind.__name__] = done.get(kind.__name__, 0) + 1

    async with trio.open_nursery() as nursery:
        for number in range(CYCLES):
            await limiter.acquire_on_behalf_of(number)
            nursery.start_soon(one_cycle, number)
    return done


async def test_two_thousand_abrupt_clients_leave_nothing_behind() -> None:
    with trio.fail_after(TIMEOUT), structlog.testing.capture_logs() as logs:
        async with churn_server() as served, trio.open_nursery() as background:
            idle_tasks = served.tasks()
            background.start_soon(publish_steadily, served.publisher)
            done = await churn(served.server.port)
            background.cancel_scope.cancel()

            def settled() -> bool:
                return (
                    served.server.websocket_count == 0
                    and served.publisher.subscriber_count() == 0
                    and served.connections_gauge() == 0
                    and served.tasks() == idle_tasks
                )

            # Handlers finish their lingering closes (at most ~1 s each) on their own.
            with trio.move_on_after(SETTLE_SECONDS):
                await eventually(settled)
            assert served.server.websocket_count == 0
            assert served.publisher.subscriber_count() == 0
            assert served.connections_gauge() == 0
            assert served.tasks() == idle_tasks, "tasks leaked"
            # And the server still serves.
            await clean_session(served.server.port)
    assert sum(done.values()) == CYCLES
    assert done["silent_until_408"] == CYCLES // SILENT_EVERY
    crashes = [entry for entry in logs if entry["log_level"] in ("error", "critical")]
    assert crashes == []
