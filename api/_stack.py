"""The wiring of one served session: what ``runcast run`` and ``runcast demo`` serve.

How the events flow (each arrow a subscription to the publisher, or a call)::

    executor ── task and executor events ──▶ Publisher ─┬─▶ SessionBroadcaster
                                                         │     └─ session_update ─▶ Publisher
                                                         ├─▶ RuncastMetrics ─▶ /metrics
                                                         ├─▶ StoreRecorder ─▶ SessionStore (SQLite)
                                                         └─▶ RuncastServer ─▶ WebSocket, /api/*
    operators ─ pause, resume, cancel, budget ─▶ RuncastServer ─▶ executor
    StoreRecorder behind ─▶ _StorePressure ─▶ executor holds new starts
    SessionLease heartbeat ─▶ SessionStore; lost ─▶ the stack stops (exit 2)

:func:`open_stack` starts them bottom up (store services, broadcaster,
executor, server) and stops them in the order that loses nothing: tasks end,
the broadcaster sends its final update, the server delivers it and closes its
clients, the recorder flushes, the lease is let go.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from contextlib import asynccontextmanager
from typing import Any

import attrs
import structlog
import trio
from prometheus_client import CollectorRegistry

from broadcaster import RuncastMetrics, SessionBroadcaster, serve_broadcaster
from events import Publisher, SessionUpdate
from executor import DEFAULT_KEEP_FINISHED, Executor, OnBudget, PriceTable, open_executor

from .server import ConfigError, RuncastServer, ServerConfig, serve_runcast
from .store import (
    LeaseLostError,
    Offload,
    SerialOffload,
    SessionLease,
    SessionStore,
    StoreError,
    StoreRecorder,
    serve_session_lease,
    serve_store_recorder,
)

log = structlog.get_logger("runcast.api")


@attrs.frozen(kw_only=True)
class StackSettings:
    """What the served stack is built with (a command's flags, resolved)."""

    server: ServerConfig
    concurrency: int = 4
    budget_usd: float | None = None
    prices: PriceTable | None = None
    start_paused: bool = False
    #: What an exhausted budget does to running tasks (``executor.ON_BUDGET``).
    on_budget: OnBudget = "pause"
    interval: float = 10.0
    retry_backoff: float = 1.0
    #: The session this run records into; a resumed one carries on from ``previous``.
    session_id: str | None = None
    previous: SessionUpdate | None = None
    last_seq: int = 0
    spent_usd: float = 0.0
    #: Finished tasks the executor keeps listing (``/api/tasks``); older ones are
    #: still in the store.
    keep_finished: int = DEFAULT_KEEP_FINISHED


@attrs.define(eq=False)
class Stack:
    publisher: Publisher
    metrics: RuncastMetrics
    broadcaster: SessionBroadcaster
    executor: Executor
    server: RuncastServer
    recorder: StoreRecorder | None = None


@attrs.define(eq=False)
class _StorePressure:
    """Holds new task starts while the store falls behind; lets go when it catches up.

    Only a pause it made itself is undone, so an operator's pause stays put.
    """

    executor: Executor | None = None
    holding: bool = False

    def __call__(self, behind: bool) -> None:
        executor = self.executor
        if executor is None:
            return
        if behind and not executor.is_paused:
            executor.pause(by="system", reason="the store is falling behind")
            self.holding = True
        elif not behind and self.holding:
            self.holding = False
            if executor.is_paused:
                executor.resume(by="system", reason="the store caught up")


async def _record(
    store: SessionStore,
    publisher: Publisher,
    settings: StackSettings,
    pressure: _StorePressure,
    offload: Offload,
    *,
    task_status: trio.TaskStatus[StoreRecorder] = trio.TASK_STATUS_IGNORED,
) -> None:
    assert settings.session_id is not None  # open_stack checks it
    try:
        await serve_store_recorder(
            store,
            publisher,
            session_id=settings.session_id,
            on_backpressure=pressure,
            offload=offload,
            task_status=task_status,
        )
    except StoreError as exc:
        # Said on the event stream before the run stops, so watchers see why.
        log.error("store failed", error=str(exc))
        if pressure.executor is not None and not pressure.executor.is_paused:
            pressure.executor.pause(by="system", reason=f"store failed: {exc}")
        raise


async def _hold_lease(
    store: SessionStore,
    lease: SessionLease,
    offload: Offload,
    recorder: StoreRecorder | None,
    pressure: _StorePressure,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        await serve_session_lease(store, lease, offload=offload, task_status=task_status)
    except LeaseLostError as exc:
        # Another process runs the session now: this run writes nothing more
        # (what the recorder still holds is that process's to redo, not ours
        # to store), says why on the event stream, and stops.
        unwritten = 0
        if recorder is not None:
            unwritten = len(recorder.pending)
            recorder.failure = exc
        log.error("session lease lost", error=str(exc), unwritten_events=unwritten)
        if pressure.executor is not None and not pressure.executor.is_paused:
            pressure.executor.pause(by="system", reason=f"session lease lost: {exc}")
        raise LeaseLostError(f"{exc} ({unwritten} events of this run left unwritten)") from exc


@attrs.define(eq=False)
class _Service:
    """A service of the stack, run in its own cancel scope so it can be stopped in turn."""

    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    stopped: trio.Event = attrs.field(factory=trio.Event)
    started: bool = False

    async def start(self, nursery: trio.Nursery, serve: Callable[..., Awaitable[None]]) -> Any:
        self.started = True
        return await nursery.start(self._run, serve)

    async def _run(
        self,
        serve: Callable[..., Awaitable[None]],
        *,
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            with self.scope:
                await serve(task_status=task_status)
        finally:
            self.stopped.set()

    async def stop(self) -> None:
        """Cancel it and wait until it has ended (its own shutdown runs first)."""
        self.scope.cancel()
        if self.started:
            await self.stopped.wait()


def _check(settings: StackSettings, store: SessionStore | None, lease: SessionLease | None) -> None:
    if store is not None and settings.session_id is None:
        raise ConfigError("a stack recording into a store needs settings.session_id")
    if lease is not None and (store is None or lease.session_id != settings.session_id):
        raise ConfigError("a lease needs the store and the session it is for")


@attrs.define(eq=False)
class _StoreServices:
    """The recorder and the lease heartbeat: one worker thread, one write at a time."""

    recorder_service: _Service = attrs.field(factory=_Service)
    lease_service: _Service = attrs.field(factory=_Service)
    offload: SerialOffload = attrs.field(factory=SerialOffload)
    recorder: StoreRecorder | None = None

    async def start(
        self,
        nursery: trio.Nursery,
        store: SessionStore | None,
        lease: SessionLease | None,
        publisher: Publisher,
        settings: StackSettings,
        pressure: _StorePressure,
    ) -> None:
        if store is None:
            return
        self.recorder = await self.recorder_service.start(
            nursery, functools.partial(_record, store, publisher, settings, pressure, self.offload)
        )
        if lease is not None:
            await self.lease_service.start(
                nursery,
                functools.partial(_hold_lease, store, lease, self.offload, self.recorder, pressure),
            )

    async def stop(self) -> None:
        await self.recorder_service.stop()  # its own shutdown flushes what is pending
        self.lease_service.scope.cancel()  # after the flush: the last write is still ours


async def _start_broadcaster(
    nursery: trio.Nursery,
    service: _Service,
    publisher: Publisher,
    metrics: RuncastMetrics,
    settings: StackSettings,
) -> SessionBroadcaster:
    broadcaster: SessionBroadcaster = await service.start(
        nursery,
        functools.partial(
            serve_broadcaster,
            publisher,
            metrics=metrics,
            interval=settings.interval,
            session_id=settings.session_id,
        ),
    )
    if settings.previous is not None:
        broadcaster.restore(settings.previous)
    return broadcaster


def _open_executor(publisher: Publisher, settings: StackSettings) -> AsyncContextManager[Executor]:
    return open_executor(
        publisher,
        concurrency=settings.concurrency,
        budget_usd=settings.budget_usd,
        prices=settings.prices,
        start_paused=settings.start_paused,
        on_budget=settings.on_budget,
        retry_backoff=settings.retry_backoff,
        spent_usd=settings.spent_usd,
        keep_finished=settings.keep_finished,
    )


@asynccontextmanager
async def open_stack(
    settings: StackSettings,
    *,
    store: SessionStore | None = None,
    lease: SessionLease | None = None,
) -> AsyncIterator[Stack]:
    """Store recorder, publisher, metrics, broadcaster, executor and server, torn down
    in reverse.

    Leaving the block normally waits for the executor's tasks (cancel them first
    to stop sooner), lets the broadcaster send its final update, then closes the
    WebSocket clients with 1001 and stops listening; the recorder flushes last.
    With a ``lease`` on the session, its heartbeat runs until after that flush
    (through the recorder's worker, one write at a time); losing the lease stops
    the stack with :class:`LeaseLostError`.
    """
    _check(settings, store, lease)
    publisher = Publisher(last_seq=settings.last_seq)
    metrics = RuncastMetrics(CollectorRegistry(), publisher)
    pressure = _StorePressure()
    store_services = _StoreServices()
    broadcasting = _Service()
    try:
        async with trio.open_nursery() as nursery:
            await store_services.start(nursery, store, lease, publisher, settings, pressure)
            broadcaster = await _start_broadcaster(
                nursery, broadcasting, publisher, metrics, settings
            )
            async with _open_executor(publisher, settings) as executor:
                pressure.executor = executor
                server: RuncastServer = await nursery.start(
                    functools.partial(
                        serve_runcast,
                        publisher,
                        session_source=broadcaster,
                        executor=executor,
                        metrics=metrics,
                        config=settings.server,
                    )
                )
                yield Stack(
                    publisher, metrics, broadcaster, executor, server, store_services.recorder
                )
            # Tasks are over: the broadcaster sends its final update as it stops,
            # and the server delivers it before closing the clients.
            await broadcasting.stop()
            await server.shutdown()
            await store_services.stop()
    finally:
        publisher.close()
        metrics.close()
