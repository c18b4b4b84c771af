"""Records the event stream into the store without the trio thread touching the disk.

The recorder is a publisher listener: it turns each event into write operations
on a bounded pending list (cheap, inline, lossless). ``serve_store_recorder``
flushes that list from a worker thread at least every ``flush_interval``
seconds and on shutdown. When writes fall behind past ``soft_limit`` pending
operations it asks the executor to hold new work (``on_backpressure``); past
``hard_limit``, or when SQLite fails, the recorder fails loudly with
:class:`StoreError` instead of dropping records.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import structlog
import trio

from events import (
    BudgetChanged,
    BudgetExhausted,
    BudgetWarning,
    ExecutorPaused,
    ExecutorResumed,
    Published,
    Publisher,
    SessionUpdate,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskOutput,
    TaskQueued,
    TaskRetrying,
    TaskStarted,
    TaskUsage,
    format_time,
)

from ._exceptions import StoreError, StoreOverloadedError
from ._store import SessionStore, WriteOp

log = structlog.get_logger("runcast.store")

# Runs a blocking write away from the trio thread; replaceable in tests.
Offload = Callable[[Callable[[], object]], Awaitable[None]]


async def _to_worker_thread(write: Callable[[], object]) -> None:
    await trio.to_thread.run_sync(write)


DEFAULT_FLUSH_INTERVAL = 0.25
DEFAULT_HISTORY_KEEP = 50_000
# Ops per worker-thread call: between calls the thread lets go of the GIL, so a
# large batch cannot hold the event loop up for long.
WRITE_CHUNK = 2_000


@attrs.define(eq=False)
class StoreRecorder:
    """Turns events into pending write operations; see the module docstring."""

    store: SessionStore
    session_id: str
    soft_limit: int = 20_000
    hard_limit: int = 200_000
    history_keep: int = DEFAULT_HISTORY_KEEP
    record_output: bool = True
    on_backpressure: Callable[[bool], None] | None = None
    offload: Offload = _to_worker_thread
    pending: list[WriteOp] = attrs.field(factory=list)
    written_ops: int = 0
    flushes: int = 0
    failure: StoreError | None = None
    backpressure: bool = False
    _wake: trio.Event = attrs.field(factory=trio.Event)
    _caught_up: trio.Event = attrs.field(factory=trio.Event)

    def __attrs_post_init__(self) -> None:
        self._caught_up.set()

    def __call__(self, item: Published) -> None:
        if self.failure is not None:
            return
        ops = self._ops_for(item)
        self.pending.extend(ops)
        size = len(self.pending)
        if size >= self.hard_limit:
            self.failure = StoreOverloadedError(
                f"store {self.store.path} fell {size} writes behind (limit {self.hard_limit})"
            )
            self._wake.set()
        elif size >= self.soft_limit and not self.backpressure:
            self._set_backpressure(True)
            self._wake.set()

    def _set_backpressure(self, on: bool) -> None:
        self.backpressure = on
        log.warning("store backpressure", on=on, pending=len(self.pending))
        if on:
            self._caught_up = trio.Event()
        else:
            self._caught_up.set()
        if self.on_backpressure is not None:
            self.on_backpressure(on)

    async def wait_caught_up(self) -> None:
        """Wait while the store is behind (producers that can wait, e.g. submitting
        a large job file, use this; pausing the executor cannot stop them)."""
        if self.failure is not None:
            raise self.failure
        await self._caught_up.wait()

    def _ops_for(self, item: Published) -> list[WriteOp]:
        event = item.event
        sid = self.session_id
        at = format_time(item.time)
        ops: list[WriteOp] = []
        if not isinstance(event, SessionUpdate) and (
            self.record_output or not isinstance(event, TaskOutput)
        ):
            history = (sid, item.seq, at, event.event_name, event.task_id, item.wire)
            ops.append(("event", history))
        match event:
            case TaskQueued():
                ops.append(("task_upsert", (sid, event.task_id, event.name, "queued", 0)))
            case TaskStarted():
                ops.append(("task_upsert", (sid, event.task_id, event.name, "running", 0)))
                ops.append(("task_started", (event.attempt, at, sid, event.task_id)))
            case TaskCompleted():
                ops.append(self._ended(event.task_id, "completed", at, event, None))
            case TaskFailed():
                ops.append(self._ended(event.task_id, "failed", at, event, event.error))
            case TaskCancelled():
                ops.append(
                    ("task_ended", ("cancelled", at, None, None, event.reason, sid, event.task_id))
                )
            case TaskRetrying():
                ops.append(("task_retrying", (event.error, sid, event.task_id)))
            case TaskUsage():
                ops.append(("usage", _usage_row(sid, item.seq, at, event)))
            case ExecutorPaused() | ExecutorResumed():
                paused = isinstance(event, ExecutorPaused)
                kind = "pause" if paused else "resume"
                ops.append(("control", (sid, item.seq, at, kind, event.by, event.reason, None)))
                ops.append(("paused", (int(paused), sid)))
            case BudgetChanged():
                control = (sid, item.seq, at, "budget", event.by, event.reason, event.budget_usd)
                ops.append(("control", control))
                ops.append(("budget", (event.budget_usd, sid)))
            case BudgetWarning() | BudgetExhausted():
                kind = event.event_name
                ops.append(("control", (sid, item.seq, at, kind, "budget", "", event.budget_usd)))
            case SessionUpdate():
                started = None if event.started_at is None else format_time(event.started_at)
                counts = (event.tasks_completed, event.tasks_failed, event.tasks_cancelled)
                ops.append(("snapshot", (started, event.duration_seconds, *counts, sid)))
        return ops

    def _ended(
        self, task_id: str, state: str, at: str, event: TaskCompleted | TaskFailed, error: Any
    ) -> WriteOp:
        row = (state, at, event.duration_seconds, event.exit_code, error, self.session_id, task_id)
        return ("task_ended", row)

    async def flush(self) -> int:
        """Write everything pending from a worker thread; returns how many ops."""
        if self.failure is not None:
            raise self.failure
        batch, self.pending = self.pending, []
        if not batch:
            return 0
        for start in range(0, len(batch), WRITE_CHUNK):
            chunk = batch[start : start + WRITE_CHUNK]
            try:
                await self.offload(functools.partial(self.store.write_batch, chunk))
            except StoreError as exc:
                # Keep what is unwritten so nothing is lost from view; the run fails loudly.
                self.pending[:0] = batch[start:]
                self.failure = exc
                self._caught_up.set()
                raise
            except BaseException:
                # Cancelled between chunks: the shutdown flush writes the rest.
                self.pending[:0] = batch[start:]
                raise
            self.written_ops += len(chunk)
        self.flushes += 1
        if self.backpressure and len(self.pending) < self.soft_limit // 2:
            self._set_backpressure(False)
        return len(batch)

    async def prune_history(self) -> None:
        """Keep only the newest ``history_keep`` events of the session's history."""
        store, session_id, keep = self.store, self.session_id, self.history_keep
        await self.offload(lambda: store.prune_events(session_id, keep=keep))

    async def wait_for_work(self, interval: float) -> None:
        with trio.move_on_after(interval):
            await self._wake.wait()
        self._wake = trio.Event()


def _usage_row(sid: str, seq: int, at: str, event: TaskUsage) -> tuple[Any, ...]:
    return (
        sid,
        event.task_id,
        seq,
        at,
        event.model,
        event.provider,
        event.input_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.cache_write_tokens,
        event.cost_usd,
        event.cost_source,
    )


async def serve_store_recorder(
    store: SessionStore,
    publisher: Publisher,
    *,
    session_id: str,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    soft_limit: int = 20_000,
    hard_limit: int = 200_000,
    history_keep: int = DEFAULT_HISTORY_KEEP,
    on_backpressure: Callable[[bool], None] | None = None,
    offload: Offload = _to_worker_thread,
    task_status: trio.TaskStatus[StoreRecorder] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Record ``publisher``'s events into ``store`` until cancelled, then flush."""
    recorder = StoreRecorder(
        store,
        session_id,
        soft_limit=soft_limit,
        hard_limit=hard_limit,
        history_keep=history_keep,
        on_backpressure=on_backpressure,
        offload=offload,
    )
    remove = publisher.add_listener(recorder)
    try:
        task_status.started(recorder)
        flushes_since_prune = 0
        while True:
            await recorder.wait_for_work(flush_interval)
            await recorder.flush()
            flushes_since_prune += 1
            if flushes_since_prune >= 40:
                flushes_since_prune = 0
                await recorder.prune_history()
    finally:
        remove()
        if recorder.failure is None:
            with trio.CancelScope(shield=True), trio.move_on_after(30):
                await recorder.flush()
