"""Helpers for the api tests: a served stack on loopback, a raw HTTP client, a fake executor."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import attrs
import h11
import trio
import wsproto
import wsproto.events
from prometheus_client import CollectorRegistry
from trio_websocket import WebSocketConnection, open_websocket

from api import RuncastServer, ServerConfig, serve_runcast
from broadcaster import RuncastMetrics, SessionBroadcaster, serve_broadcaster
from events import (
    BudgetChanged,
    ExecutorPaused,
    ExecutorResumed,
    Publisher,
    RuncastError,
    TaskCancelled,
)
from executor import Executor, open_executor

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@attrs.frozen(kw_only=True)
class FakeTask:
    task_id: str
    name: str = ""
    state: str = "queued"
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    estimated_cost_usd: float = 0.0
    unpriced_tokens: int = 0
    error: str | None = None
    exit_code: int | None = None


@attrs.frozen
class FakePage:
    tasks: tuple[FakeTask, ...]
    next_after: int | None


class FakeRefusal(RuncastError):
    pass


@attrs.define(eq=False)
class FakeExecutor:
    """Records operator commands and publishes what a real executor would."""

    publisher: Publisher
    rows: list[FakeTask] = attrs.field(factory=list)
    is_paused: bool = False
    budget_usd: float | None = None
    over_budget: bool = False
    calls: list[tuple[str, object]] = attrs.field(factory=list)
    #: ``(after, limit)`` of every ``task_page`` call.
    page_calls: list[tuple[int | None, int]] = attrs.field(factory=list)
    #: The ``suspend`` of every ``pause`` call.
    suspends: list[bool | None] = attrs.field(factory=list)

    def pause(self, *, by: str = "operator", reason: str = "", suspend: bool | None = None) -> None:
        self.calls.append(("pause", by))
        self.suspends.append(suspend)
        if not self.is_paused:
            self.is_paused = True
            self.publisher.publish(ExecutorPaused(by="operator", reason=reason))

    def resume(self, *, by: str = "operator", reason: str = "") -> None:
        self.calls.append(("resume", by))
        if self.over_budget:
            raise FakeRefusal("cannot resume: spent $2.00 of a $1.00 budget; raise the budget")
        if self.is_paused:
            self.is_paused = False
            self.publisher.publish(ExecutorResumed(by="operator", reason=reason))

    def cancel(self, task_id: str, *, reason: str = "cancelled by operator") -> bool:
        self.calls.append(("cancel", task_id))
        for index, row in enumerate(self.rows):
            if row.task_id == task_id:
                if row.state in ("completed", "failed", "cancelled"):
                    return False
                self.rows[index] = attrs.evolve(row, state="cancelled")
                self.publisher.publish(TaskCancelled(task_id=task_id, reason=reason))
                return True
        raise FakeRefusal(f"unknown task {task_id!r}")

    def retry(self, task_id: str) -> None:
        self.calls.append(("retry", task_id))
        raise FakeRefusal(f"task {task_id!r} cannot be retried here")

    def set_concurrency(self, concurrency: int, *, by: str = "operator", reason: str = "") -> None:
        self.calls.append(("set_concurrency", concurrency))

    def set_budget(self, usd: float | None, *, by: str = "operator") -> None:
        self.calls.append(("set_budget", usd))
        self.budget_usd = usd
        self.publisher.publish(BudgetChanged(budget_usd=usd, by="operator"))

    def tasks(self) -> list[FakeTask]:
        return list(self.rows)

    def task_page(
        self, *, after: int | None = None, limit: int, states: Collection[str] | None = None
    ) -> FakePage:
        """Pages of ``rows``, whose index is the cursor."""
        self.page_calls.append((after, limit))
        chosen = [
            (index, row)
            for index, row in enumerate(self.rows)
            if (after is None or index > after) and (states is None or row.state in states)
        ]
        more = len(chosen) > limit
        del chosen[limit:]
        return FakePage(tuple(row for _, row in chosen), chosen[-1][0] if more else None)

    def has_task(self, task_id: str) -> bool:
        return any(row.task_id == task_id for row in self.rows)


@attrs.define(eq=False)
class Stack:
    publisher: Publisher
    broadcaster: SessionBroadcaster
    metrics: RuncastMetrics
    executor: FakeExecutor
    server: RuncastServer

    @property
    def port(self) -> int:
        return self.server.port


@asynccontextmanager
async def served(
    config: ServerConfig | None = None,
    *,
    with_executor: bool = True,
    publisher: Publisher | None = None,
) -> AsyncIterator[Stack]:
    """Publisher, broadcaster, metrics, a fake executor and the server on port 0."""
    publisher = Publisher() if publisher is None else publisher
    metrics = RuncastMetrics(CollectorRegistry(), publisher)
    executor = FakeExecutor(publisher, rows=[FakeTask(task_id="t1", name="first")])
    async with trio.open_nursery() as nursery:
        broadcaster = await nursery.start(serve_broadcaster, publisher)
        server = await nursery.start(
            lambda task_status: serve_runcast(
                publisher,
                session_source=broadcaster,
                executor=executor if with_executor else None,
                metrics=metrics,
                config=config or ServerConfig(port=0),
                task_status=task_status,
            )
        )
        try:
            yield Stack(publisher, broadcaster, metrics, executor, server)
        finally:
            nursery.cancel_scope.cancel()
            metrics.close()


@attrs.frozen
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def http_exchange(port: int, request: bytes, *, host: str = "127.0.0.1") -> HttpReply:
    """Send raw request bytes, read the response until the server closes."""
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(request)
        received = bytearray()
        while chunk := await stream.receive_some(65536):
            received += chunk
    return parse_reply(bytes(received))


def parse_reply(data: bytes) -> HttpReply:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    client.receive_data(b"")
    response = client.next_event()
    assert isinstance(response, h11.Response), response
    body = bytearray()
    while isinstance(event := client.next_event(), h11.Data):
        body += event.data
    headers = {k.decode().lower(): v.decode() for k, v in response.headers}
    return HttpReply(response.status_code, headers, bytes(body))


async def http_get(
    port: int, target: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> HttpReply:
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return await http_exchange(port, ("\r\n".join(lines) + "\r\n\r\n").encode())


@asynccontextmanager
async def ws_client(
    port: int, resource: str = "/ws", *, headers: list[tuple[bytes, bytes]] | None = None
) -> AsyncIterator[WebSocketConnection]:
    async with open_websocket(
        "127.0.0.1", port, resource, use_ssl=False, extra_headers=headers
    ) as ws:
        yield ws


async def send_json(ws: WebSocketConnection, frame: object) -> None:
    await ws.send_message(json.dumps(frame))


async def receive_json(ws: WebSocketConnection) -> dict[str, Any]:
    message = await ws.get_message()
    assert isinstance(message, str)
    frame = json.loads(message)
    assert isinstance(frame, dict)
    return frame


async def request(ws: WebSocketConnection, frame: object) -> dict[str, Any]:
    """Send one message and return the next frame that is not an event."""
    await send_json(ws, frame)
    while True:
        reply = await receive_json(ws)
        if reply["type"] not in ("event", "gap"):
            return reply


@attrs.define(eq=False)
class RawWebSocket:
    """A bare wsproto client: sends exactly what a test says and never answers pings."""

    stream: trio.abc.Stream
    conn: wsproto.WSConnection = attrs.field(
        factory=lambda: wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    )
    _pending: list[wsproto.events.Event] = attrs.field(factory=list)

    async def send(self, event: wsproto.events.Event) -> None:
        await self.stream.send_all(self.conn.send(event))

    async def next_event(self) -> wsproto.events.Event | None:
        """The next event from the server, or None once it closed the connection."""
        while not self._pending:
            self._pending.extend(self.conn.events())
            if self._pending:
                break
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.conn.receive_data(bytes(data))
        return self._pending.pop(0)

    async def handshake(self, target: str = "/ws", host: str = "127.0.0.1") -> None:
        await self.send(wsproto.events.Request(host=host, target=target))
        event = await self.next_event()
        assert isinstance(event, wsproto.events.AcceptConnection), event


@attrs.define(eq=False)
class Served:
    publisher: Publisher
    executor: Executor
    server: RuncastServer


@asynccontextmanager
async def served_with_executor(
    config: ServerConfig | None = None, **executor_options: Any
) -> AsyncIterator[Served]:
    """A real executor (``open_executor(**executor_options)``) served on a free port."""
    publisher = Publisher()
    metrics = RuncastMetrics(CollectorRegistry(), publisher)
    try:
        async with trio.open_nursery() as nursery:
            broadcaster = await nursery.start(serve_broadcaster, publisher)
            async with open_executor(publisher, **executor_options) as executor:
                server = await nursery.start(
                    lambda task_status: serve_runcast(
                        publisher,
                        session_source=broadcaster,
                        executor=executor,
                        metrics=metrics,
                        config=config or ServerConfig(port=0),
                        task_status=task_status,
                    )
                )
                try:
                    yield Served(publisher, executor, server)
                finally:
                    executor.cancel_all(reason="test over")
            nursery.cancel_scope.cancel()
    finally:
        metrics.close()
