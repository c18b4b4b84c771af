"""The life of every task, in one place: queued, started, run by a worker, retried, ended.

    submit ─▶ queued ──fill──▶ running ──▶ completed | failed | cancelled
                ▲                 │
                └─── retrying ◀───┘   (an attempt failed and retries are left)

``TaskLifecycle`` makes every move and runs the attempts in its workers (the
``TaskWorkers`` mixin of ``_workers``); the
``Executor`` is its public face, and a task's ``TaskContext`` and
``TaskHandle`` reach it only through the ``TaskHost`` protocol it implements.

Invariants (tests/executor/test_states.py drives random operations against them):

1. A state change happens synchronously here, never in a detached task, and its
   event is published right after it: ``tasks()``, ``is_paused`` and the event
   stream always agree.
2. ``registry.live`` holds exactly the tasks not ended; ``active`` counts them,
   ``running`` the running ones; ``_idle`` is set exactly when ``active`` is 0.
3. At most ``concurrency`` tasks run (after ``set_concurrency`` lowered it, those
   running finish first); none starts while paused or once closed;
   one fill starts at most ``FILL_CHUNK``, the rest a turn of the loop later.
4. A queued task is in the queue (a cancelled one lingers there until popped).
5. A running task waits in ``_ready`` for a worker or is run by one (``_workers``,
   invariant 5); a retrying task's ``scope`` is its back-off's.
6. Every task ends once, in ``_end``: it leaves ``registry.live`` for the
   bounded finished rows, lets go of its function, arguments, scope and
   context (a failed or cancelled task's are kept with its row, for
   ``Executor.retry``, which reopens it: the one way out of an end state),
   and wakes whoever waits on its handle.
7-8. The workers and how an attempt ends: ``_workers``' invariants.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import attrs
import trio

from events import (
    Event,
    ExecutorPaused,
    ExecutorResumed,
    Publisher,
    TaskQueued,
    TaskRetrying,
    TaskStarted,
    truncate,
)
from events.lowlevel import fast_constructor

from ._exceptions import InvalidArgumentError
from ._failures import describe_failure
from ._host import ProcessGroupHook
from ._queue import TaskQueue
from ._record import EndState, TaskRecord
from ._registry import TaskRegistry
from ._spending import Spending
from ._suspension import Suspension
from ._workers import TaskWorkers

#: Most tasks started in one go; more wait for the next turn of the event loop,
#: so a burst (a resume with 1,000 queued) never holds the loop for long and the
#: broadcaster's first update goes out after the first chunk.
FILL_CHUNK: Final = 64
# Checked as the classes check them, built without attrs' per-field setattr calls.
_task_queued = fast_constructor(TaskQueued)
_task_started = fast_constructor(TaskStarted)


@attrs.define(eq=False)
class TaskLifecycle(TaskWorkers):
    """Moves tasks between their states and runs their attempts (see the module's invariants)."""

    _publisher: Publisher = attrs.field(repr=False)
    _nursery: trio.Nursery = attrs.field(repr=False)
    _registry: TaskRegistry = attrs.field(repr=False)
    _spending: Spending = attrs.field(repr=False)
    concurrency: int
    retry_backoff: float
    running: int = 0
    active: int = 0
    #: Set once the executor's block is left: nothing more starts.
    closed: bool = False
    _paused: bool = False
    _unpaused: trio.Event = attrs.field(factory=trio.Event, repr=False)
    _idle: trio.Event = attrs.field(factory=trio.Event, repr=False)
    _queue: TaskQueue = attrs.field(factory=TaskQueue, repr=False)
    _fill_pending: bool = False
    # The run's clock, read directly (``trio.current_time()`` adds two frames).
    _clock: trio.abc.Clock = attrs.field(init=False, repr=False)
    # Started tasks waiting for a worker, oldest first; idle workers park in ``_parking``.
    _ready: deque[TaskRecord] = attrs.field(factory=deque, repr=False)
    _parking: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot, repr=False)
    workers: int = 0
    # Workers parked and not yet unparked (a ParkingLot's len() is a Python call).
    _parked: int = 0
    # The TaskHost counters (see there).
    output_lines_truncated: int = 0
    usage_records_refused: int = 0
    names_cut: int = 0
    #: The running commands' groups a suspending pause stopped (see ``_suspension``).
    suspension: Suspension = attrs.field(init=False, repr=False)
    #: Told of every command's process group as it starts and ends (``ProcessGroupHook``).
    on_process_group: ProcessGroupHook | None = attrs.field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        self._clock = trio.lowlevel.current_clock()
        self._unpaused.set()
        self.suspension = Suspension(self._registry, self._clock)

    # -- entering and leaving ------------------------------------------------
    def submit(self, record: TaskRecord) -> None:
        """Take a new task (its id checked and unused) and queue it."""
        self._registry.live[record.task_id] = record
        if self.active == 0:
            self._idle = trio.Event()
        self.active += 1
        self._enqueue(record)

    def requeue(self, record: TaskRecord) -> None:
        """Queue again a task the registry reopened (``Executor.retry``)."""
        if self.active == 0:
            self._idle = trio.Event()
        self.active += 1
        self._enqueue(record)

    def set_concurrency(self, concurrency: int) -> None:
        """Let ``concurrency`` tasks run at once: more start at once if it rose; if it
        fell, running ones finish (none is cancelled) and parked workers beyond it end."""
        self.concurrency = concurrency
        excess = min(self._parked, self.workers - concurrency)
        for _ in range(max(0, excess)):
            self._parked -= 1
            self._parking.unpark()
        self._fill()

    async def join(self) -> None:
        """Wait until no task is queued, running or waiting to retry."""
        while self.active:
            await self._idle.wait()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """Nothing more starts; workers end once what was started has run."""
        self.closed = True
        self._parked = 0
        self._parking.unpark_all()

    # -- scheduling ----------------------------------------------------------
    def _enqueue(self, record: TaskRecord) -> None:
        self._queue.push(record)
        self._publisher.publish(
            _task_queued(
                task_id=record.task_id,
                name=record.name,
                attempt=record.attempts + 1,
                priority=record.priority,
            )
        )
        if self.running < self.concurrency:  # else nothing can start (most submits)
            self._fill()

    def _fill(self) -> None:
        """Start queued tasks while slots are free and the executor is not paused."""
        if self.closed:
            return
        queue = self._queue
        started = 0
        while not self._paused and self.running < self.concurrency and queue.length:
            if started == FILL_CHUNK:
                if not self._fill_pending:
                    self._fill_pending = True
                    self._nursery.start_soon(self._fill_later, name="runcast executor fill")
                return
            record = queue.pop()
            if record.state == "queued":  # cancelled ones are dropped lazily here
                self._start(record)
                started += 1

    async def _fill_later(self) -> None:
        # A new task's first step comes after the tasks already runnable (the
        # broadcaster's flusher among them) have had their turn.
        self._fill_pending = False
        self._fill()

    def _start(self, record: TaskRecord) -> None:
        record.move_to("running")
        self.running += 1
        record.attempts += 1
        record.attempt_started = self._clock.current_time()
        record.scope = None  # its worker's, once one takes it
        published = self._publisher.publish(
            _task_started(task_id=record.task_id, name=record.name, attempt=record.attempts)
        )
        if record.started_at is None:
            # The event's own time stamp: one clock reading per transition.
            record.started_at = self._publisher.clock() if published is None else published.time
        self._hand_over(record)

    def _attempt_failed(self, record: TaskRecord, error: BaseException) -> None:
        if record.attempts > record.retries:
            self._end(record, "failed", error=error)
            return
        delay = self.retry_backoff * 2 ** (record.attempts - 1)
        record.move_to("retrying")
        self.running -= 1
        record.scope = trio.CancelScope()
        self._publisher.publish(
            TaskRetrying(
                task_id=record.task_id,
                attempt=record.attempts,
                delay_seconds=delay,
                error=describe_failure(error),
            )
        )
        self._nursery.start_soon(self._retry_after, record, delay, record.scope)
        self._fill()

    async def _retry_after(self, record: TaskRecord, delay: float, scope: trio.CancelScope) -> None:
        slept = False
        try:
            with scope:
                await trio.sleep(delay)
                slept = True
        finally:
            # ``cancel()`` ends a retrying task itself; anything else that cuts
            # the sleep short is the executor shutting down.
            if record.state == "retrying":
                if slept:
                    record.move_to("queued")
                    self._enqueue(record)
                else:
                    self._end(record, "cancelled", reason="executor stopped")

    def _end(
        self,
        record: TaskRecord,
        state: EndState,
        *,
        reason: str = "",
        error: BaseException | None = None,
    ) -> None:
        was_running = record.state == "running"
        event = record.finish(
            state, self._clock.current_time(), reason=reason, error=error, describe=describe_failure
        )
        if was_running:
            self.running -= 1
        self.active -= 1
        published = self._publisher.publish(event)
        record.ended_at = self._publisher.clock() if published is None else published.time
        self._registry.finish(record)
        if self.suspension.held:
            self.suspension.forget(record.task_id)
        if record.done is not None:
            record.done.set()
        if self.active == 0:
            self._idle.set()
        if self._queue.length:
            self._fill()

    # -- operator controls ---------------------------------------------------
    def cancel(self, task_id: str, *, reason: str) -> bool:
        """Cancel a queued, retrying or running task; False if it had already ended.

        A running task is cancelled where it is (its worker's scope); it ends
        once its attempt is gone.
        """
        record = self._registry.live_or_ended(task_id)
        if record is None or record.cancel_reason is not None:
            return False
        if not isinstance(reason, str):
            raise InvalidArgumentError(f"reason must be a string, got {reason!r}")
        record.cancel_reason = truncate(reason)
        if record.scope is not None:  # its attempt's or its retry back-off's
            record.scope.cancel()
        if record.state != "running":
            self._end(record, "cancelled", reason=reason)
        # A running task without a scope waits for a worker, which ends it unrun.
        return True

    def pause(self, event: ExecutorPaused, *, suspend: bool = False) -> None:
        """Stop starting queued tasks, announced by ``event``; ``suspend`` also stops
        running commands (``_suspension``).  Already paused: nothing is published,
        but a pause that did not suspend is made to."""
        if self._paused:
            if suspend and not self.suspension.active:
                self.suspension.stop_all()
            return
        self._paused = True
        self._unpaused = trio.Event()
        self._publisher.publish(event)
        if suspend:
            self.suspension.stop_all()

    def resume(self, event: ExecutorResumed) -> None:
        """Start queued tasks again, announced by ``event``; nothing if not paused.
        Commands a pause stopped are continued."""
        if not self._paused:
            return
        self._paused = False
        self._unpaused.set()
        self._publisher.publish(event)
        if self.suspension.active:
            self.suspension.continue_all()
        self._fill()

    # -- TaskHost: what a task's context and handle ask (documented in _host) --
    @property
    def is_paused(self) -> bool:
        return self._paused

    def publish(self, event: Event) -> None:
        self._publisher.publish(event)

    async def wait_unpaused(self) -> None:
        await self._unpaused.wait()

    def add_process_group(self, record: TaskRecord, pgid: int) -> None:
        if record.process_groups is None:
            record.process_groups = set()
        record.process_groups.add(pgid)
        if self.suspension.active:
            self.suspension.stop_group(record, pgid)
        if self.on_process_group is not None:
            self.on_process_group(record.task_id, pgid, True)

    def remove_process_group(self, record: TaskRecord, pgid: int) -> None:
        groups = record.process_groups
        if groups is not None:
            groups.discard(pgid)
        if self.on_process_group is not None:
            self.on_process_group(record.task_id, pgid, False)
