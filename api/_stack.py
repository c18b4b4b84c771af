"""Everything ``runcast run`` and ``runcast demo`` serve: publisher to server, in order."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import structlog
import trio
from prometheus_client import CollectorRegistry

from broadcaster import RuncastMetrics, SessionBroadcaster, serve_broadcaster
from events import Publisher
from executor import Executor, PriceTable, open_executor

from ._config import ServerConfig
from ._server import RuncastServer, serve_runcast

log = structlog.get_logger("runcast.api")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@attrs.frozen(kw_only=True)
class StackSettings:
    """What the served stack is built with (a command's flags, resolved)."""

    server: ServerConfig
    concurrency: int = 4
    budget_usd: float | None = None
    prices: PriceTable | None = None
    start_paused: bool = False
    interval: float = 10.0
    retry_backoff: float = 1.0


@attrs.define(eq=False)
class Stack:
    publisher: Publisher
    metrics: RuncastMetrics
    broadcaster: SessionBroadcaster
    executor: Executor
    server: RuncastServer


async def _run_scoped(
    scope: trio.CancelScope,
    stopped: trio.Event,
    serve: Callable[..., Awaitable[None]],
    *,
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        with scope:
            await serve(task_status=task_status)
    finally:
        stopped.set()


@asynccontextmanager
async def open_stack(settings: StackSettings) -> AsyncIterator[Stack]:
    """Publisher, metrics, broadcaster, executor and server, torn down in reverse.

    Leaving the block normally waits for the executor's tasks (cancel them first
    to stop sooner), lets the broadcaster send its final update, then closes the
    WebSocket clients with 1001 and stops listening.
    """
    publisher = Publisher()
    metrics = RuncastMetrics(CollectorRegistry(), publisher)
    broadcaster_scope, broadcaster_stopped = trio.CancelScope(), trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            broadcaster: SessionBroadcaster = await nursery.start(
                _run_scoped,
                broadcaster_scope,
                broadcaster_stopped,
                lambda task_status: serve_broadcaster(
                    publisher, metrics=metrics, interval=settings.interval, task_status=task_status
                ),
            )
            async with open_executor(
                publisher,
                concurrency=settings.concurrency,
                budget_usd=settings.budget_usd,
                prices=settings.prices,
                start_paused=settings.start_paused,
                retry_backoff=settings.retry_backoff,
            ) as executor:
                server: RuncastServer = await nursery.start(
                    lambda task_status: serve_runcast(
                        publisher,
                        sessions=broadcaster,
                        executor=executor,
                        metrics=metrics,
                        config=settings.server,
                        task_status=task_status,
                    )
                )
                stack = Stack(publisher, metrics, broadcaster, executor, server)
                yield stack
            # Tasks are over: the broadcaster sends its final update as it stops,
            # and the server delivers it before closing the clients.
            broadcaster_scope.cancel()
            await broadcaster_stopped.wait()
            await server.shutdown()
    finally:
        publisher.close()
        metrics.close()


@attrs.define(eq=False)
class StopSignals:
    """SIGINT/SIGTERM while a command runs: the first asks for a graceful stop, a second
    one cancels :attr:`scope` (the whole command) at once."""

    received: str | None = None
    first: trio.Event = attrs.field(factory=trio.Event)
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)

    async def wait(self) -> str:
        """The name of the first signal, once it arrives."""
        await self.first.wait()
        assert self.received is not None
        return self.received

    async def _watch(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            if self.received is None:
                self.received = name
                log.warning("stopping gracefully; send it again to stop at once", signal=name)
                self.first.set()
            else:
                log.warning("stopping at once", signal=name)
                self.scope.cancel()


@asynccontextmanager
async def watch_stop_signals() -> AsyncIterator[StopSignals]:
    """Catch SIGINT/SIGTERM for the whole block, teardown included."""
    stop = StopSignals()
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop._watch, signals)
            try:
                with stop.scope:
                    yield stop
            finally:
                nursery.cancel_scope.cancel()
