"""Everything ``runcast run`` and ``runcast demo`` serve: publisher to server, in order."""

from __future__ import annotations

import functools
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import structlog
import trio
from prometheus_client import CollectorRegistry

from broadcaster import RuncastMetrics, SessionBroadcaster, serve_broadcaster
from events import Publisher, SessionUpdate
from executor import DEFAULT_KEEP_FINISHED, Executor, PriceTable, open_executor

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
    if store is not None and settings.session_id is None:
        raise ConfigError("a stack recording into a store needs settings.session_id")
    if lease is not None and (store is None or lease.session_id != settings.session_id):
        raise ConfigError("a lease needs the store and the session it is for")
    publisher = Publisher(last_seq=settings.last_seq)
    metrics = RuncastMetrics(CollectorRegistry(), publisher)
    broadcaster_scope, broadcaster_stopped = trio.CancelScope(), trio.Event()
    recorder_scope, recorder_stopped = trio.CancelScope(), trio.Event()
    lease_scope = trio.CancelScope()
    pressure = _StorePressure()
    offload = SerialOffload()
    try:
        async with trio.open_nursery() as nursery:
            recorder: StoreRecorder | None = None
            if store is not None:
                recorder = await nursery.start(
                    _run_scoped,
                    recorder_scope,
                    recorder_stopped,
                    functools.partial(_record, store, publisher, settings, pressure, offload),
                )
            if lease is not None:
                assert store is not None  # checked above
                await nursery.start(
                    _run_scoped,
                    lease_scope,
                    trio.Event(),
                    functools.partial(_hold_lease, store, lease, offload, recorder, pressure),
                )
            broadcaster: SessionBroadcaster = await nursery.start(
                _run_scoped,
                broadcaster_scope,
                broadcaster_stopped,
                lambda task_status: serve_broadcaster(
                    publisher,
                    metrics=metrics,
                    interval=settings.interval,
                    session_id=settings.session_id,
                    task_status=task_status,
                ),
            )
            if settings.previous is not None:
                broadcaster.restore(settings.previous)
            async with open_executor(
                publisher,
                concurrency=settings.concurrency,
                budget_usd=settings.budget_usd,
                prices=settings.prices,
                start_paused=settings.start_paused,
                retry_backoff=settings.retry_backoff,
                spent_usd=settings.spent_usd,
                keep_finished=settings.keep_finished,
            ) as executor:
                pressure.executor = executor
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
                stack = Stack(publisher, metrics, broadcaster, executor, server, recorder)
                yield stack
            # Tasks are over: the broadcaster sends its final update as it stops,
            # and the server delivers it before closing the clients.
            broadcaster_scope.cancel()
            await broadcaster_stopped.wait()
            await server.shutdown()
            recorder_scope.cancel()  # its own shutdown flushes what is pending
            if store is not None:
                await recorder_stopped.wait()
            lease_scope.cancel()
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
