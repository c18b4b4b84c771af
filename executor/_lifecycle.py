"""Long-lived worker tasks that run the executor's attempts, one at a time each.

A trio task spawned, and a ``CancelScope`` made, entered and left, for every
attempt cost about as much as a bare no-op task (the scope alone ~48 k
instructions). A worker is spawned once (at most ``limit`` of them, when a
record is ready and no worker is parked) and runs attempt after attempt inside
ONE cancel scope, replaced only once it was cancelled (an operator ``cancel``
or an expired timeout); a timeout is the scope's deadline while its attempt
runs. Without workers, executor + publisher cost 311 k instructions per no-op
task; with them 245 k (bench README section 2).

An attempt cancelled while it waits for a worker never runs. Inside a task,
``trio.lowlevel.current_task()`` is its worker, shared with other tasks.

Each attempt still runs in a copy of its submitter's context variables
(:func:`run_in_context` steps its coroutine inside that context), so what one
task binds never reaches the next task of the same worker.
"""

from __future__ import annotations

import contextvars
import types
from collections import deque
from collections.abc import Awaitable, Coroutine, Generator
from math import inf
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ._context import TaskContext
from ._failures import sole_cause
from ._task import TaskRecord

if TYPE_CHECKING:
    from ._executor import Executor


@types.coroutine
def run_in_context(
    context: contextvars.Context, coro: Coroutine[Any, Any, Any]
) -> Generator[Any, Any, Any]:
    """``await coro`` with every step of it run inside ``context``.

    What the coroutine yields (trio's traps) goes to the worker's task unchanged,
    and what trio sends or throws back goes to the coroutine, so it behaves as
    if it were the task's own coroutine, only with its own context variables.
    """
    run = context.run
    send = coro.send
    try:
        step = run(send, None)
        while True:
            try:
                value = yield step
            except BaseException as exc:  # Cancelled, KeyboardInterrupt, GeneratorExit too
                step = run(coro.throw, exc)
            else:
                step = run(send, value)
    except StopIteration as stop:
        return stop.value


async def awaiting(awaitable: Awaitable[Any]) -> Any:
    """A coroutine for anything awaitable (a task function need not be ``async def``)."""
    return await awaitable


@attrs.define(eq=False)
class WorkerPool:
    """Started attempts waiting for a worker, and the workers that run them."""

    _executor: Executor = attrs.field(repr=False)
    _nursery: trio.Nursery = attrs.field(repr=False)
    limit: int
    #: Records already started (``running``, ``task_started`` published), oldest first.
    _ready: deque[TaskRecord] = attrs.field(factory=deque, repr=False)
    _idle: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot, repr=False)
    workers: int = 0
    # Workers in ``_idle`` not yet unparked (a ParkingLot's len() is a Python call).
    _parked: int = 0
    _closing: bool = False

    def hand_over(self, record: TaskRecord) -> None:
        """Give a started record to a parked worker, a new one, or the next one free.

        ``limit`` is the executor's concurrency: when every worker is busy,
        fewer than ``limit`` records are running, so one of them is about to end
        and take this record before it parks.
        """
        self._ready.append(record)
        if self._parked:
            self._parked -= 1
            self._idle.unpark()
        elif self.workers < self.limit:
            self.workers += 1
            self._nursery.start_soon(self._work, name=f"runcast worker {self.workers}")

    def close(self) -> None:
        """Let workers end once nothing is ready (the executor's block is ending)."""
        self._closing = True
        self._parked = 0
        self._idle.unpark_all()

    async def _work(self) -> None:
        ready = self._ready
        record: TaskRecord | None = None
        try:
            while True:
                scope = trio.CancelScope()
                with scope:
                    while True:
                        if not ready:
                            if self._closing:
                                return
                            await self._park()
                            continue
                        record = ready.popleft()
                        if record.cancel_reason is not None:
                            # Cancelled while it waited for a worker: it never runs.
                            self._attempt_cut(record)
                        else:
                            record.scope = scope
                            timeout = record.timeout
                            if timeout is not None:
                                scope.deadline = record.attempt_started + timeout
                            await self._run_attempt(record)
                            if timeout is not None and not scope.cancel_called:
                                scope.deadline = inf
                        record = None
                        if scope.cancel_called:
                            break  # spent: the next attempt gets a fresh scope
                        # A new attempt's first step comes after what is runnable now,
                        # as it would for a newly spawned task.
                        await trio.lowlevel.cancel_shielded_checkpoint()
                if record is not None:
                    # This scope's cancellation (an operator cancel or the timeout)
                    # ended the attempt; the scope caught its ``Cancelled``.
                    self._attempt_cut(record)
                    record = None
        finally:
            self.workers -= 1
            if record is not None:
                # Cancelled from outside (the executor's nursery): nothing runs it now.
                self._attempt_abandoned(record)
            self._drain()

    async def _park(self) -> None:
        self._parked += 1
        try:
            await self._idle.park()
        except BaseException:
            # Cancelled while parked: no ``unpark`` counted it off.
            self._parked -= 1
            raise

    async def _run_attempt(self, record: TaskRecord) -> None:
        """Run one attempt in its worker; ends it unless ``Cancelled`` cuts it short.

        The attempt runs in a copy of the context its task was submitted in
        (as a task spawned there would), whichever task's end started it.
        """
        executor = self._executor
        ctx = TaskContext(executor, record, record.attempts)
        fn = record.fn
        context = record.context
        # Only ended tasks let go of these; a started task always has them.
        assert fn is not None
        assert context is not None
        context = context.copy()
        try:
            coro = context.run(fn, ctx, *record.args)
            if type(coro) is not types.CoroutineType:  # any awaitable will do
                coro = awaiting(coro)
            result = await run_in_context(context, coro)
        except Exception as exc:
            if record.cancel_reason is not None:
                executor._end(record, "cancelled", reason=record.cancel_reason)
            else:
                # A nursery in the task wraps even a single error in a group: fail
                # with the error itself, so its message (and a timeout) shows.
                executor._attempt_failed(record, sole_cause(exc))
            return
        finally:
            ctx._end_attempt()
        if record.cancel_reason is not None:
            executor._end(record, "cancelled", reason=record.cancel_reason)
        else:
            record.result = result
            executor._end(record, "completed")

    def _attempt_cut(self, record: TaskRecord) -> None:
        """Its worker's scope cut the attempt (or it never ran): ``cancel()`` or the timeout."""
        if record.cancel_reason is not None:
            self._executor._end(record, "cancelled", reason=record.cancel_reason)
        else:
            timed_out = trio.TooSlowError(f"timed out after {record.timeout}s")
            self._executor._attempt_failed(record, timed_out)

    def _attempt_abandoned(self, record: TaskRecord) -> None:
        """The executor's own nursery is being cancelled (shutdown) under the attempt."""
        if record.state == "running":
            reason = record.cancel_reason or "executor stopped"
            self._executor._end(record, "cancelled", reason=reason)

    def _drain(self) -> None:
        """A worker cancelled from outside: end what would wait for it for ever."""
        if self.workers == 0:
            while self._ready:
                self._attempt_abandoned(self._ready.popleft())
