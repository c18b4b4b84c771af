"""Records the event stream into the store without the trio thread touching the disk.

The recorder is a publisher listener: it queues each published event on a
bounded pending deque (one append, inline, lossless). ``serve_store_recorder``
flushes it from a worker thread at least every ``flush_interval`` seconds, as
soon as ``WRITE_CHUNK`` events are pending, and on shutdown. The worker turns
the events into rows (``_rows``) and writes each run of up to
``WRITE_CHUNK`` events in one transaction, in order, so the store always holds a
prefix of the stream; one worker call goes on with what is published meanwhile
(up to ``DRAIN_SECONDS``), so the store keeps pace with a busy event loop. When
writes fall behind past ``soft_limit`` pending events it asks the executor to
hold new work (``on_backpressure``) until less than half that is left to write;
past ``hard_limit``, or when a write fails (SQLite's error, or any other: a
value it cannot hold), the recorder fails loudly with :class:`StoreError`
instead of dropping records.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence

import attrs
import structlog
import trio

from events import Published, Publisher, TaskOutput

from ._exceptions import StoreError, StoreOverloadedError
from ._offload import Offload, to_worker_thread
from ._rows import RowBuilder, StoreRows, describe_too_large, escape_text
from ._store import SessionStore

log = structlog.get_logger("runcast.store")

DEFAULT_FLUSH_INTERVAL = 0.25
DEFAULT_HISTORY_KEEP = 50_000
# Events per transaction: between transactions the thread lets go of the GIL,
# so a large backlog cannot hold the event loop up for long.
WRITE_CHUNK = 1_000
#: How long one worker-thread call goes on writing chunks (it also returns when
#: nothing is left, or when back-pressure can be lifted). Each call is one round
#: trip through the event loop; with one call per chunk, a busy loop (a step of
#: 1,000 submissions) let the worker write only one chunk per turn, it fell
#: behind, and back-pressure left the loop idle while it caught up.
DRAIN_SECONDS = 0.25
DEFAULT_SOFT_LIMIT = 10_000
DEFAULT_HARD_LIMIT = 100_000


@attrs.define(eq=False)
class BackpressureLog:
    """Says when the store holds new work back, without a warning pair per flap.

    Under sustained load the back-pressure goes on and off every fraction of a
    second: the first change is logged at once, later ones are counted and
    summed up (how often held, for how long) at most every ``interval`` seconds.
    """

    interval: float = 30.0
    #: Wall time, not trio's: the recorder is also fed outside a trio run (tests, tools).
    clock: Callable[[], float] = time.monotonic
    times_held: int = 0
    held_seconds: float = 0.0
    _held_since: float | None = None
    _last_said: float = -math.inf
    _said_times: int = 0
    _said_seconds: float = 0.0

    def changed(self, on: bool, pending: int) -> None:
        now = self.clock()
        if on:
            self.times_held += 1
            self._held_since = now
        elif self._held_since is not None:
            self.held_seconds += now - self._held_since
            self._held_since = None
        if now - self._last_said < self.interval:
            return
        if self._last_said == -math.inf:
            log.warning("store backpressure", on=on, pending=pending)
        else:
            log.warning(
                "store backpressure",
                on=on,
                pending=pending,
                times_held=self.times_held - self._said_times,
                held_seconds=round(self.held_seconds - self._said_seconds, 3),
                over_seconds=round(now - self._last_said, 3),
            )
        self._last_said = now
        self._said_times, self._said_seconds = self.times_held, self.held_seconds


@attrs.define(eq=False)
class StoreRecorder:
    """Queues events for the store; see the module docstring."""

    store: SessionStore
    session_id: str
    soft_limit: int = DEFAULT_SOFT_LIMIT
    hard_limit: int = DEFAULT_HARD_LIMIT
    history_keep: int = DEFAULT_HISTORY_KEEP
    record_output: bool = True
    on_backpressure: Callable[[bool], None] | None = None
    offload: Offload = to_worker_thread
    #: Published and not yet written, oldest first. The listener appends on the
    #: trio thread while the worker thread pops from the left: a deque, whose
    #: append and popleft are each atomic, so neither needs a lock.
    pending: deque[Published] = attrs.field(factory=deque)
    written_events: int = 0
    #: Worker-thread calls that wrote something (each up to ``DRAIN_SECONDS`` of chunks).
    flushes: int = 0
    failure: StoreError | None = None
    backpressure: bool = False
    backpressure_log: BackpressureLog = attrs.field(factory=BackpressureLog)
    _rows: RowBuilder = attrs.field(init=False)
    _wake: trio.Event = attrs.field(factory=trio.Event)
    _caught_up: trio.Event = attrs.field(factory=trio.Event)
    #: The pending size at which the listener next looks further: a chunk's worth
    #: wakes the worker (so it writes while the loop runs, instead of the two
    #: taking turns at the soft limit), then the soft limit.
    _check_at: int = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._rows = RowBuilder(self.session_id, record_output=self.record_output)
        self._caught_up.set()
        self._check_at = self._first_check()

    def _first_check(self) -> int:
        return min(WRITE_CHUNK, self.soft_limit)

    def __call__(self, item: Published) -> None:
        # Inline in every publish: keep it to an append and a length check.
        if self.failure is not None:
            return
        if not self.record_output and type(item.event) is TaskOutput:
            return
        pending = self.pending
        pending.append(item)
        if len(pending) >= self._check_at:
            self._grown(len(pending))

    def _grown(self, size: int) -> None:
        if size < self.soft_limit:
            self._check_at = self.soft_limit
            self._wake.set()
        elif size >= self.hard_limit:
            self.failure = StoreOverloadedError(
                f"store {self.store.path} fell {size} events behind (limit {self.hard_limit})"
            )
            self._wake.set()
        elif not self.backpressure:
            self._set_backpressure(True)
            self._wake.set()

    def _set_backpressure(self, on: bool) -> None:
        self.backpressure = on
        self.backpressure_log.changed(on, len(self.pending))
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

    def write_now(self, items: Sequence[Published]) -> None:
        """Turn ``items`` into rows and write them in one transaction, in this thread
        (what the worker thread does with each chunk; benchmarks call it directly).

        Every failure is a :class:`StoreError`. Text SQLite cannot encode is
        written again escaped; a number it cannot hold is named.
        """
        try:
            rows = self._rows.rows(items)
        except Exception as exc:
            raise StoreError(
                f"cannot turn events into rows for store {self.store.path}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        try:
            self.store.write_rows(rows)
        except StoreError as exc:
            # Looked into only now, so that no other write pays for it.
            if not isinstance(exc.__cause__, UnicodeEncodeError):
                raise self._named(exc, rows) from exc.__cause__
            try:
                self.store.write_rows(escape_text(rows))
            except StoreError as again:
                raise self._named(again, rows) from again.__cause__

    def _named(self, error: StoreError, rows: StoreRows) -> StoreError:
        """``error``, or if a number was too large for SQLite, one that names it."""
        if isinstance(error.__cause__, OverflowError):
            named = describe_too_large(rows)
            if named is not None:
                return StoreError(f"writing to store {self.store.path} failed: {named}")
        return error

    async def flush(self) -> int:
        """Write from a worker thread until nothing is pending; returns how many events.

        Events published meanwhile are written by the same flush.
        """
        if self.failure is not None:
            raise self.failure
        before = self.written_events
        while self.pending:
            await self.write_pending()
        return self.written_events - before

    async def write_pending(self) -> None:
        """One worker-thread call: write pending chunks for up to ``DRAIN_SECONDS``.

        Each chunk is its own transaction. Back-pressure lifts as soon as less
        than half the soft limit is left to write, so producers refill while the
        rest is written.
        """
        if self.failure is not None:
            raise self.failure
        if not self.pending:
            return
        self._check_at = self._first_check()
        try:
            await self.offload(self._drain)
        except StoreError as exc:
            # What is unwritten is still pending, in order: nothing is lost from view.
            self.failure = exc
            self._caught_up.set()
            raise
        finally:
            self._check_at = self._first_check()
        self.flushes += 1
        if self.backpressure and len(self.pending) < self.soft_limit // 2:
            self._set_backpressure(False)

    def _drain(self) -> None:
        """Worker-thread side of :meth:`write_pending`: write chunks for up to ``DRAIN_SECONDS``.

        Returns early once nothing is pending, or once back-pressure can be lifted
        (that is the trio thread's to do). A chunk that fails to write is put back
        in front, so ``pending`` always holds exactly what is not in the store.
        """
        pending = self.pending
        popleft = pending.popleft
        lift_under = self.soft_limit // 2
        deadline = time.monotonic() + DRAIN_SECONDS
        while pending:
            chunk = [popleft() for _ in range(min(len(pending), WRITE_CHUNK))]
            try:
                self.write_now(chunk)
            except BaseException:
                pending.extendleft(reversed(chunk))
                raise
            self.written_events += len(chunk)
            if self.backpressure and len(pending) < lift_under:
                return
            if time.monotonic() >= deadline:
                return

    async def prune_history(self) -> None:
        """Keep only the newest ``history_keep`` events of the session's history."""
        store, session_id, keep = self.store, self.session_id, self.history_keep
        await self.offload(lambda: store.prune_events(session_id, keep=keep))

    async def wait_for_work(self, interval: float) -> None:
        with trio.move_on_after(interval):
            await self._wake.wait()
        self._wake = trio.Event()


async def serve_store_recorder(
    store: SessionStore,
    publisher: Publisher,
    *,
    session_id: str,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    soft_limit: int = DEFAULT_SOFT_LIMIT,
    hard_limit: int = DEFAULT_HARD_LIMIT,
    history_keep: int = DEFAULT_HISTORY_KEEP,
    on_backpressure: Callable[[bool], None] | None = None,
    offload: Offload = to_worker_thread,
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
            if len(recorder.pending) < WRITE_CHUNK:
                await recorder.wait_for_work(flush_interval)
            # One worker call at a time, not a whole flush: under steady load
            # pending may never be empty, and the history must still be pruned.
            await recorder.write_pending()
            flushes_since_prune += 1
            if flushes_since_prune >= 40:
                flushes_since_prune = 0
                await recorder.prune_history()
    finally:
        remove()
        if recorder.failure is None:
            with trio.CancelScope(shield=True), trio.move_on_after(30):
                await recorder.flush()
